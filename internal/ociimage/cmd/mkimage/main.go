// Command mkimage writes the nsrel node-agent image (`make image`) as an
// OCI image layout tar: nsrel-containerd and nsrel-hook (static
// binaries, built by make) in /usr/local/sbin, the shipped hook configs
// in /etc/nsrel, the licence, and the org.opencontainers.image labels.
// Load it with `ctr -n k8s.io images import FILE` on each node (or push
// it with any tool that reads OCI layouts).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nsrel/nsrel/internal/ociimage"
)

func main() {
	bin := flag.String("bin", "bin/image", "directory holding the static nsrel-containerd and nsrel-hook")
	repo := flag.String("repo", ".", "the repository (configs, LICENSE)")
	name := flag.String("name", "docker.io/nsrel/node-agent:0.1.0", "image reference")
	version := flag.String("version", "0.1.0", "org.opencontainers.image.version")
	revision := flag.String("revision", "", "org.opencontainers.image.revision (the commit)")
	out := flag.String("o", "bin/nsrel-node-agent.tar", "output file")
	flag.Parse()
	if err := write(*bin, *repo, *name, *version, *revision, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func write(bin, repo, name, version, revision, out string) error {
	layer := []ociimage.Entry{}
	for _, d := range []string{"dev/", "etc/", "etc/nsrel/", "host/", "proc/", "run/", "sys/", "tmp/",
		"usr/", "usr/local/", "usr/local/sbin/", "usr/share/", "usr/share/doc/", "usr/share/doc/nsrel/", "var/", "var/log/"} {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		layer = append(layer, ociimage.Entry{Name: d, Mode: mode})
	}
	files := []struct{ src, dst string }{
		{filepath.Join(bin, "nsrel-containerd"), "usr/local/sbin/nsrel-containerd"},
		{filepath.Join(bin, "nsrel-hook"), "usr/local/sbin/nsrel-hook"},
		{filepath.Join(repo, "config/hook.json"), "etc/nsrel/hook.json"},
		{filepath.Join(repo, "config/hook-enforce.json"), "etc/nsrel/hook-enforce.json"},
		{filepath.Join(repo, "config/hook-enforce-cri.json"), "etc/nsrel/hook-enforce-cri.json"},
		{filepath.Join(repo, "LICENSE"), "usr/share/doc/nsrel/LICENSE"},
	}
	for _, f := range files {
		data, err := os.ReadFile(f.src)
		if err != nil {
			return err
		}
		mode := int64(0o644)
		if filepath.Dir(f.dst) == "usr/local/sbin" {
			mode = 0o755
		}
		layer = append(layer, ociimage.Entry{Name: f.dst, Mode: mode, Data: data})
	}
	labels := map[string]string{
		"org.opencontainers.image.title":       "nsrel-node-agent",
		"org.opencontainers.image.description": "nsrel node agent: NRI plugin injecting nsrel-hook, with the hook and its configs",
		"org.opencontainers.image.version":     version,
		"org.opencontainers.image.source":      "https://github.com/nsrel/nsrel",
		"org.opencontainers.image.licenses":    "Apache-2.0",
	}
	if revision != "" {
		labels["org.opencontainers.image.revision"] = revision
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	err = ociimage.Write(f, ociimage.Image{
		Name: name,
		Config: map[string]any{
			"Env":        []string{"PATH=/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"},
			"Entrypoint": []string{"/usr/local/sbin/nsrel-containerd"},
			"Cmd":        []string{"nri"},
			"Labels":     labels,
		},
		Annotations: labels,
		Layers:      [][]ociimage.Entry{layer},
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out)
	}
	return err
}
