// SPDX-License-Identifier: Apache-2.0

package smp

import (
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// The CBOR bodies of the commands fieldgate uses. Field order is the wire
// order (the encoder keeps struct order), which the golden vectors pin.

// EchoRequest is the body of OS echo (write, group 0, id 0).
type EchoRequest struct {
	D string `cbor:"d"`
}

// EchoResponse answers EchoRequest.
type EchoResponse struct {
	R string `cbor:"r"`
}

// ParamsResponse answers MCUmgr parameters (read, group 0, id 6). BufSize is
// the largest SMP packet (header included) the device accepts.
type ParamsResponse struct {
	BufSize  uint32 `cbor:"buf_size"`
	BufCount uint32 `cbor:"buf_count"`
}

// OSInfoRequest is the body of OS information (read, group 0, id 7);
// Format "b" asks for the board name.
type OSInfoRequest struct {
	Format string `cbor:"format,omitempty"`
}

// OSInfoResponse answers OSInfoRequest.
type OSInfoResponse struct {
	Output string `cbor:"output"`
}

// ImageStateRequest is the body of image state write (group 1, id 0): test
// an image (Hash, Confirm false) or confirm one (Confirm true; no Hash means
// the running image). Image list is the same command as a read with an
// empty body.
type ImageStateRequest struct {
	Hash    []byte `cbor:"hash,omitempty"`
	Confirm bool   `cbor:"confirm"`
}

// ImageStateResponse answers image list and image state write.
type ImageStateResponse struct {
	Images      []Slot `cbor:"images"`
	SplitStatus int    `cbor:"splitStatus,omitempty"`
}

// Slot is one image slot as the device reports it. Hash is the image's
// SHA-256 TLV (see ParseImage), not the hash of the file.
type Slot struct {
	Image     int    `cbor:"image"`
	Slot      int    `cbor:"slot"`
	Version   string `cbor:"version"`
	Hash      []byte `cbor:"hash"`
	Bootable  bool   `cbor:"bootable"`
	Pending   bool   `cbor:"pending"`
	Confirmed bool   `cbor:"confirmed"`
	Active    bool   `cbor:"active"`
	Permanent bool   `cbor:"permanent"`
}

// UploadRequest is the body of image upload (write, group 1, id 1). The
// first chunk (Off 0) carries Image, Len and SHA (the SHA-256 of the whole
// file, which lets the device resume an interrupted upload of the same
// file); later chunks carry Off and Data only.
type UploadRequest struct {
	Image *uint32 `cbor:"image,omitempty"`
	Len   uint64  `cbor:"len,omitempty"`
	Off   uint64  `cbor:"off"`
	SHA   []byte  `cbor:"sha,omitempty"`
	Data  []byte  `cbor:"data"`
}

// UploadResponse answers UploadRequest with the offset the device expects
// next; it may differ from what the client sent (resume, or a lost chunk).
type UploadResponse struct {
	Off   uint64 `cbor:"off"`
	Match *bool  `cbor:"match,omitempty"`
}

// EraseRequest is the body of image erase (write, group 1, id 5).
type EraseRequest struct {
	Slot *uint32 `cbor:"slot,omitempty"`
}

// Empty is the body of commands without arguments (reset, image list,
// params).
type Empty struct{}

// status is what every response may carry besides its own fields: a v1
// result code or a v2 error map.
type status struct {
	RC  *int     `cbor:"rc"`
	Err *errorV2 `cbor:"err"`
	Rsn string   `cbor:"rsn"`
}

type errorV2 struct {
	Group uint16 `cbor:"group"`
	RC    int    `cbor:"rc"`
}

// MaxBody is the largest CBOR body Unmarshal accepts; larger bodies are
// refused before decoding.
const MaxBody = 0xffff

// The codec modes are built once from constants; they are immutable and safe
// for concurrent use.
var (
	encMode = must(cbor.EncOptions{}.EncMode())
	decMode = must(cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:  8,
		MaxArrayElements: 64,
		MaxMapPairs:      64,
	}.DecMode())
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Marshal encodes v as a CBOR body.
func Marshal(v any) ([]byte, error) {
	b, err := encMode.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode CBOR: %w", err)
	}
	return b, nil
}

// Unmarshal decodes a CBOR body into v with limits suited to untrusted
// device replies (nesting, map and array sizes, duplicate keys, body size).
// Unknown map keys are ignored.
func Unmarshal(body []byte, v any) error {
	if len(body) > MaxBody {
		return fmt.Errorf("decode CBOR: body of %d bytes exceeds %d: %w", len(body), MaxBody, ErrMalformed)
	}
	if len(body) == 0 {
		body = []byte{0xa0} // an empty body is an empty map
	}
	if err := decMode.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode CBOR: %v: %w", err, ErrMalformed)
	}
	return nil
}

// CheckStatus decodes the error fields of a response body and returns a
// *DeviceError when the device reported one, or an ErrMalformed error when
// the body is not a CBOR map.
func CheckStatus(h Header, body []byte) error {
	var st status
	if err := Unmarshal(body, &st); err != nil {
		return err
	}
	switch {
	case st.Err != nil && st.Err.RC != 0:
		return &DeviceError{Group: st.Err.Group, ID: h.ID, RC: st.Err.RC, V2: true}
	case st.RC != nil && *st.RC != 0:
		return &DeviceError{Group: h.Group, ID: h.ID, RC: *st.RC, Reason: st.Rsn}
	}
	return nil
}
