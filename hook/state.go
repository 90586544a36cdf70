package hook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Limits on the state a runtime passes on stdin. The state comes from a
// runtime, but its annotations come from whoever created the container:
// treat it as hostile.
const (
	MaxStateSize       = 1 << 20
	MaxIDLen           = 1024
	MaxBundleLen       = 4096
	MaxAnnotations     = 4096
	MaxAnnotationValue = 64 << 10
	// maxPID is the kernel's PID_MAX_LIMIT.
	maxPID = 1 << 22
)

// DecodeState reads the OCI state JSON from r: at most [MaxStateSize]
// bytes, one JSON object, unknown fields (crun's "root") ignored. It
// checks the ID, bundle, PID and annotations against the limits above.
func DecodeState(r io.Reader) (*specs.State, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxStateSize+1))
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	if len(data) > MaxStateSize {
		return nil, fmt.Errorf("state: larger than %d bytes", MaxStateSize)
	}
	var st specs.State
	d := json.NewDecoder(bytes.NewReader(data))
	if err := d.Decode(&st); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("state: data after the JSON object")
	}
	switch {
	case st.ID == "":
		return nil, errors.New("state: no container id")
	case len(st.ID) > MaxIDLen:
		return nil, fmt.Errorf("state: container id longer than %d bytes", MaxIDLen)
	case !utf8.ValidString(st.ID):
		return nil, errors.New("state: container id is not valid UTF-8")
	case len(st.Bundle) > MaxBundleLen:
		return nil, fmt.Errorf("state: bundle path longer than %d bytes", MaxBundleLen)
	case st.Pid < 0 || st.Pid >= maxPID:
		return nil, fmt.Errorf("state: pid %d out of range", st.Pid)
	case len(st.Annotations) > MaxAnnotations:
		return nil, fmt.Errorf("state: more than %d annotations", MaxAnnotations)
	}
	for k, v := range st.Annotations {
		if len(v) > MaxAnnotationValue || len(k) > MaxAnnotationValue {
			return nil, fmt.Errorf("state: annotation longer than %d bytes", MaxAnnotationValue)
		}
	}
	return &st, nil
}
