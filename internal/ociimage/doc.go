// Package ociimage writes OCI image layout tars (the image-spec's
// oci-layout, index.json and blobs) without a container engine, a
// daemon or a registry: one image of uncompressed layers, named through
// the io.containerd.image.name annotation that `ctr images import` and
// containerd's CRI read. The node-agent image of `make image`
// (cmd/mkimage) and the test images of internal/ctrdtest are written
// with it. Build support, outside the library layers.
package ociimage
