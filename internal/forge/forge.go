// Package forge rewrites audit logs as an attacker who knows the record
// format would, for the demo, the reliability campaign and tests: it
// recomputes every prev and hash after a change, so that the hash chain
// alone cannot tell, and makes up seals (the key ID and epoch a real
// seal would have, any tag), so that only the verification key or a
// checkpoint shipped off the node can tell.
package forge

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Rechain recomputes, from line from on, each line's seq (counting on
// from the line before), prev (the hash of the line before) and hash
// (SHA-256 of its bytes as written up to the hash member, closed), and
// replaces the tag of each seal with a made-up one. Lines are records
// without their newline.
func Rechain(lines [][]byte, from int) ([][]byte, error) {
	out := make([][]byte, len(lines))
	copy(out, lines)
	prevHash, prevSeq := "", uint64(0)
	if from > 0 {
		h, seq, err := headOf(out[from-1])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", from, err)
		}
		prevHash, prevSeq = h, seq
	}
	for i := from; i < len(out); i++ {
		l := out[i]
		at := bytes.LastIndex(l, []byte(`,"hash":"`))
		p := bytes.LastIndex(l[:max(at, 0)], []byte(`,"prev":"`))
		s := bytes.Index(l, []byte(`"seq":`))
		if at < 0 || p < 0 || s < 0 {
			return nil, fmt.Errorf("line %d is not a record", i+1)
		}
		end := s + len(`"seq":`)
		for end < len(l) && l[end] >= '0' && l[end] <= '9' {
			end++
		}
		body := append([]byte{}, l[:s]...)
		body = append(body, `"seq":`+strconv.FormatUint(prevSeq+1, 10)...)
		body = append(body, l[end:p]...)
		body = append(body, `,"prev":"`+prevHash+`"`...)
		sum := sha256.Sum256(append(append([]byte{}, body...), '}'))
		h := hex.EncodeToString(sum[:])
		line := append(body, `,"hash":"`+h+`"`...)
		if k := bytes.LastIndex(l, []byte(`,"seal":"`)); k > at {
			seal := string(l[k+len(`,"seal":"`) : len(l)-2])
			parts := strings.Split(seal, ".")
			if len(parts) == 3 {
				tag := make([]byte, 32)
				rand.Read(tag)
				parts[2] = hex.EncodeToString(tag)
			}
			line = append(line, `,"seal":"`+strings.Join(parts, ".")+`"`...)
		}
		out[i] = append(line, '}')
		prevHash, prevSeq = h, prevSeq+1
	}
	return out, nil
}

// headOf returns a record line's hash and seq.
func headOf(l []byte) (string, uint64, error) {
	at := bytes.LastIndex(l, []byte(`,"hash":"`))
	s := bytes.Index(l, []byte(`"seq":`))
	if at < 0 || s < 0 || len(l) < at+len(`,"hash":"`)+64 {
		return "", 0, fmt.Errorf("not a record")
	}
	end := s + len(`"seq":`)
	for end < len(l) && l[end] >= '0' && l[end] <= '9' {
		end++
	}
	seq, err := strconv.ParseUint(string(l[s+len(`"seq":`):end]), 10, 64)
	return string(l[at+len(`,"hash":"`) : at+len(`,"hash":"`)+64]), seq, err
}
