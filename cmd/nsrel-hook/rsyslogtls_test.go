package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/rsyslogtest"
)

// documentedTLS returns the two lines docs/observability.md gives
// under "Authenticate the transport": the node's omrelp parameters (the
// collector's name permitted) and the collector's imrelp parameters (the
// nodes' names permitted).
func documentedTLS(t *testing.T) (node, collector string) {
	t.Helper()
	doc, err := os.ReadFile(nstest.RepoFile(t, "docs/observability.md"))
	if err != nil {
		t.Fatal(err)
	}
	find := func(re string) string {
		m := regexp.MustCompile(`(?m)^` + re + `.*$`).Find(doc)
		if m == nil {
			t.Fatalf("docs/observability.md has no line matching %s", re)
		}
		return string(m)
	}
	return find(`tls="on" .*tls\.permittedPeer=\["collector\.example"\]`), find(`tls="on" .*tls\.permittedPeer=\["node-a\.example",`)
}

// tlsCA is a CA of the test's own that signs certificates for names.
type tlsCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTLSCA(t *testing.T) *tlsCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "nsrel test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tlsCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate for name (client and server use) and its
// key, PEM-encoded.
func (ca *tlsCA) issue(t *testing.T, name string, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// tlsFiles writes ca, cert and key into a directory of their own and
// returns the documented TLS line with their paths.
func tlsFiles(t *testing.T, line string, ca, cert, key []byte) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []struct {
		doc, name string
		data      []byte
	}{{"/etc/nsrel/tls/ca.pem", "ca.pem", ca}, {"/etc/nsrel/tls/cert.pem", "cert.pem", cert}, {"/etc/nsrel/tls/key.pem", "key.pem", key}} {
		path := filepath.Join(dir, f.name)
		if err := os.WriteFile(path, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(line, strconv.Quote(f.doc)) {
			t.Fatalf("the documented TLS line no longer names %s: %s", f.doc, line)
		}
		line = strings.Replace(line, strconv.Quote(f.doc), strconv.Quote(path), 1)
	}
	return line
}

// TestShippedRsyslogTLS runs the shipped rsyslog configs over TLS with
// the settings docs/observability.md gives, as written there: the
// node's records and checkpoints reach the collector byte for byte and
// verify with them; a client with a certificate of the same CA for
// another name than the ones permitted, one that does not speak TLS,
// and an rsyslogd with the node's config and such a certificate add
// nothing (the collector says it refused the last).
func TestShippedRsyslogTLS(t *testing.T) {
	nstest.Require(t, os.Geteuid() == 0, "needs root: the hook writes root's files")
	_, modDir, err := rsyslogtest.Bin()
	nstest.Require(t, err == nil, "needs Debian's rsyslog (%v); scripts/deps.sh installs it", err)
	_, err = os.Stat(modDir + "/imrelp.so")
	nstest.Require(t, err == nil, "needs rsyslog's RELP modules (imrelp.so in %s: Debian's rsyslog-relp); scripts/deps.sh installs it", modDir)
	nodeTLS, collTLS := documentedTLS(t)
	ca := newTLSCA(t)

	collCert, collKey := ca.issue(t, "collector.example", 2)
	coll, recvAudit, recvCkpts, port := startCollector(t, tlsFiles(t, collTLS, ca.pem, collCert, collKey))

	// Intruders first: a certificate of the CA for a name not
	// permitted, and plain TCP. Each sends a checkpoint-like record line.
	intruderLine := `{"type":"nsrel-checkpoint","format":"1","host":"node-a","log":"/x","seq":99,"hash":"` + strings.Repeat("0", 64) + `","time":"2026-01-01T00:00:00Z"}`
	frame := func(msg string) []byte {
		m := "<86>1 2026-01-01T00:00:00Z node-a nsrel-checkpoints - - - " + msg
		return []byte(strconv.Itoa(len(m)) + " " + m)
	}
	badCert, badKey := ca.issue(t, "intruder.example", 3)
	pair, err := tls.X509KeyPair(badCert, badKey)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: rsyslogtest.Timeout}, "tcp", addr, &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: roots, ServerName: "collector.example"})
	// The collector must close either connection (TLS 1.3: its verdict
	// on the client's certificate comes after the handshake); one it
	// keeps open took the client.
	closed := func(who string, c net.Conn) {
		t.Helper()
		c.Write(frame(intruderLine))
		c.SetReadDeadline(time.Now().Add(rsyslogtest.Timeout))
		_, rerr := c.Read(make([]byte, 1))
		c.Close()
		if ne, ok := rerr.(net.Error); rerr == nil || ok && ne.Timeout() {
			t.Errorf("the collector kept the connection of %s open (%v)", who, rerr)
		}
	}
	if err == nil {
		closed("a client whose certificate names intruder.example", c)
	}
	p, err := net.DialTimeout("tcp", addr, rsyslogtest.Timeout)
	if err != nil {
		t.Fatal(err)
	}
	closed("a client without TLS", p)
	// An rsyslogd with the node's config and a certificate of the CA for
	// a name the collector does not permit, shipping a line of its own:
	// the collector must refuse it (it says so) and write nothing of it.
	intruder := rsyslogtest.New(t, "intruder")
	fake := intruder.Path("audit.jsonl")
	if err := os.WriteFile(fake, []byte(intruderLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	intruderConf, _ := writeNodeConf(t, intruder, port, fake, intruder.Path("checkpoints.jsonl"),
		`action.resumeRetryCount="-1"`, tlsFiles(t, nodeTLS, ca.pem, badCert, badKey)+` action.resumeRetryCount="-1"`)
	intruder.StartSystem(t, fmt.Sprintf("$IncludeConfig %s\n", intruderConf))
	deadline := time.Now().Add(rsyslogtest.Timeout)
	for !strings.Contains(coll.Output(), "intruder.example") {
		if time.Now().After(deadline) {
			t.Fatalf("the collector did not refuse the rsyslogd whose certificate names intruder.example in %v\n%s\n%s", rsyslogtest.Timeout, coll.Output(), intruder.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}

	nodeCert, nodeKey := ca.issue(t, "node-a.example", 4)
	node, e, nodeConf, ckptFile := shipNode(t, port,
		// The node's TLS settings, added to its omrelp action.
		`action.resumeRetryCount="-1"`, tlsFiles(t, nodeTLS, ca.pem, nodeCert, nodeKey)+` action.resumeRetryCount="-1"`)
	node.StartSystem(t, fmt.Sprintf("$IncludeConfig %s\n", nodeConf))
	n := shipStages(t, e, "a", "b")
	nodeLines := chainLines(t, e.log)
	got := rsyslogtest.WaitLines(t, recvAudit, n, node, coll)
	if !equalLines(t, "received records", got, nodeLines) {
		t.FailNow()
	}
	nodeCkpts, err := rsyslogtest.Lines(ckptFile)
	if err != nil {
		t.Fatal(err)
	}
	ckpts := rsyslogtest.WaitLines(t, recvCkpts, len(nodeCkpts), node, coll)
	if !equalLines(t, "received checkpoints", ckpts, nodeCkpts) {
		t.FailNow()
	}
	verifyCopy(t, n, recvCkpts, recvAudit)
}
