package ctrdtest

import (
	"io"
	"os"

	"github.com/nsrel/nsrel/internal/ociimage"
)

// ImageName is the name the busybox image is imported under.
const ImageName = "docker.io/nsrel/busybox:test"

// busyboxApplets are the applet symlinks the image carries next to
// /bin/busybox.
var busyboxApplets = []string{"sh", "sleep", "cat", "ls", "true", "false", "echo", "id", "ps", "readlink", "stat"}

// PauseImageName is a busybox image whose command sleeps forever, usable
// as a CRI sandbox (pause) image.
const PauseImageName = "docker.io/nsrel/pause:test"

// BusyboxOCITar writes an OCI image layout tar of a one-layer busybox
// image (the static /bin/busybox, applet symlinks, /proc, /sys, /dev,
// /tmp, /etc mount points) named name through the io.containerd.image.name
// annotation of index.json, with cmd as its command and labels (nil:
// none) as its config's labels, which CRI and ctr copy into the labels
// of the containers made from it.
func BusyboxOCITar(w io.Writer, busybox, name string, cmd []string, labels map[string]string) error {
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}
	var layer []ociimage.Entry
	for _, dir := range []string{"bin/", "dev/", "etc/", "proc/", "sys/", "tmp/", "run/"} {
		mode := int64(0o755)
		if dir == "tmp/" {
			mode = 0o1777
		}
		layer = append(layer, ociimage.Entry{Name: dir, Mode: mode})
	}
	layer = append(layer, ociimage.Entry{Name: "bin/busybox", Mode: 0o755, Data: bb})
	for _, a := range busyboxApplets {
		layer = append(layer, ociimage.Entry{Name: "bin/" + a, Mode: 0o777, Link: "busybox"})
	}
	layer = append(layer,
		ociimage.Entry{Name: "etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/:/bin/sh\n")},
		ociimage.Entry{Name: "etc/group", Mode: 0o644, Data: []byte("root:x:0:\n")})
	return ociimage.Write(w, ociimage.Image{
		Name:   name,
		Config: imageConfig(cmd, labels),
		Layers: [][]ociimage.Entry{layer},
	})
}

// imageConfig is the config of a busybox image: PATH, cmd and labels
// (when not nil).
func imageConfig(cmd []string, labels map[string]string) map[string]any {
	c := map[string]any{"Env": []string{"PATH=/bin"}, "Cmd": cmd}
	if labels != nil {
		c["Labels"] = labels
	}
	return c
}
