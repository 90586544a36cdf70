package ociimage

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"runtime"
	"strings"
	"time"
)

// Entry is one file, directory or symlink of a layer.
type Entry struct {
	// Name is the path without a leading slash; a directory's ends in "/".
	Name string
	// Mode is the permission bits.
	Mode int64
	// Data is a regular file's content.
	Data []byte
	// Link, if set, makes the entry a symlink to Link.
	Link string
}

// Image is one single-platform image.
type Image struct {
	// Name is the reference the image is imported under
	// ("docker.io/nsrel/node-agent:0.1.0").
	Name string
	// Config is the image config's "config" member (Env, Entrypoint,
	// Cmd, Labels, ...).
	Config map[string]any
	// Annotations go on the manifest (org.opencontainers.image.*).
	Annotations map[string]string
	// Layers are the layers, bottom first, each a list of entries.
	Layers [][]Entry
}

// epoch is every entry's modification time: the same inputs give the
// same bytes.
var epoch = time.Unix(0, 0)

// Write writes img as an OCI image layout tar to w.
func Write(w io.Writer, img Image) error {
	var layers [][]byte
	var diffIDs []string
	for _, entries := range img.Layers {
		l, err := layer(entries)
		if err != nil {
			return err
		}
		layers = append(layers, l)
		diffIDs = append(diffIDs, digest(l))
	}
	cfg, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config":       img.Config,
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		return err
	}
	var layerDescs []any
	for _, l := range layers {
		layerDescs = append(layerDescs, descriptor("application/vnd.oci.image.layer.v1.tar", l))
	}
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        descriptor("application/vnd.oci.image.config.v1+json", cfg),
		"layers":        layerDescs,
	}
	if len(img.Annotations) > 0 {
		m["annotations"] = img.Annotations
	}
	manifest, err := json.Marshal(m)
	if err != nil {
		return err
	}
	md := descriptor("application/vnd.oci.image.manifest.v1+json", manifest)
	md["platform"] = map[string]string{"architecture": runtime.GOARCH, "os": "linux"}
	tag := "latest"
	if i := strings.LastIndexByte(img.Name, ':'); i > strings.LastIndexByte(img.Name, '/') {
		tag = img.Name[i+1:]
	}
	md["annotations"] = map[string]string{"io.containerd.image.name": img.Name, "org.opencontainers.image.ref.name": tag}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests":     []any{md},
	})
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	entries := []Entry{
		{Name: "blobs/", Mode: 0o755}, {Name: "blobs/sha256/", Mode: 0o755},
		{Name: "oci-layout", Mode: 0o644, Data: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{Name: "index.json", Mode: 0o644, Data: index},
		{Name: blobPath(cfg), Mode: 0o644, Data: cfg},
		{Name: blobPath(manifest), Mode: 0o644, Data: manifest},
	}
	for _, l := range layers {
		entries = append(entries, Entry{Name: blobPath(l), Mode: 0o644, Data: l})
	}
	if err := writeEntries(tw, entries); err != nil {
		return err
	}
	return tw.Close()
}

func layer(entries []Entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := writeEntries(tw, entries); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeEntries(tw *tar.Writer, entries []Entry) error {
	for _, e := range entries {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: e.Name, Mode: e.Mode, Size: int64(len(e.Data)), ModTime: epoch}
		switch {
		case e.Link != "":
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, e.Link, 0
		case strings.HasSuffix(e.Name, "/"):
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.Data); err != nil {
				return err
			}
		}
	}
	return nil
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func blobPath(b []byte) string {
	sum := sha256.Sum256(b)
	return "blobs/sha256/" + hex.EncodeToString(sum[:])
}

func descriptor(mediaType string, b []byte) map[string]any {
	return map[string]any{"mediaType": mediaType, "digest": digest(b), "size": len(b)}
}
