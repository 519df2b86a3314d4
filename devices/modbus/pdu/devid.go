// SPDX-License-Identifier: Apache-2.0

package pdu

import "fmt"

// Read Device Identification access codes and object ids (Modbus
// application protocol 6.21).
const (
	DevIDBasic      byte = 0x01 // stream objects 0x00..0x02
	DevIDRegular    byte = 0x02 // stream objects 0x03..0x7F
	DevIDExtended   byte = 0x03 // stream objects 0x80..0xFF
	DevIDIndividual byte = 0x04 // one object

	ObjVendorName          byte = 0x00
	ObjProductCode         byte = 0x01
	ObjMajorMinorRevision  byte = 0x02
	ObjVendorURL           byte = 0x03
	ObjProductName         byte = 0x04
	ObjModelName           byte = 0x05
	ObjUserApplicationName byte = 0x06
)

// DeviceIDResponse is a decoded 0x2B/0x0E response.
type DeviceIDResponse struct {
	Code       byte // the request's access code
	Conformity byte
	More       bool // another request starting at Next is needed
	Next       byte
	Objects    []Object
}

// Object is one identification object.
type Object struct {
	ID    byte
	Value []byte
}

// EncodeDeviceIDRequest builds a 0x2B/0x0E request.
func EncodeDeviceIDRequest(code, object byte) PDU {
	return PDU{Func: Encapsulated, Data: []byte{MEIReadDeviceID, code, object}}
}

// DecodeDeviceIDRequest parses the data of a 0x2B/0x0E request.
func DecodeDeviceIDRequest(data []byte) (code, object byte, err error) {
	if len(data) != 3 || data[0] != MEIReadDeviceID {
		return 0, 0, fmt.Errorf("%w: read device identification request: % X", ErrMalformed, data[:min(len(data), 8)])
	}
	return data[1], data[2], nil
}

// EncodeDeviceIDResponse builds a 0x2B/0x0E response.
func EncodeDeviceIDResponse(r DeviceIDResponse) (PDU, error) {
	more := byte(0)
	if r.More {
		more = 0xFF
	}
	data := []byte{MEIReadDeviceID, r.Code, r.Conformity, more, r.Next, byte(len(r.Objects))}
	for _, o := range r.Objects {
		if len(o.Value) > 0xFF {
			return PDU{}, fmt.Errorf("encode device identification: object 0x%02X is %d bytes", o.ID, len(o.Value))
		}
		data = append(data, o.ID, byte(len(o.Value)))
		data = append(data, o.Value...)
	}
	if 1+len(data) > MaxPDU {
		return PDU{}, fmt.Errorf("encode device identification: %d bytes exceed one PDU", 1+len(data))
	}
	return PDU{Func: Encapsulated, Data: data}, nil
}

// DecodeDeviceIDResponse parses the data of a 0x2B/0x0E response. Object
// values alias data.
func DecodeDeviceIDResponse(data []byte) (DeviceIDResponse, error) {
	if len(data) < 6 || data[0] != MEIReadDeviceID {
		return DeviceIDResponse{}, fmt.Errorf("%w: device identification response of %d bytes", ErrMalformed, len(data))
	}
	r := DeviceIDResponse{Code: data[1], Conformity: data[2], Next: data[4]}
	switch data[3] {
	case 0x00:
	case 0xFF:
		r.More = true
	default:
		return r, fmt.Errorf("%w: device identification: more-follows byte 0x%02X", ErrMalformed, data[3])
	}
	n := int(data[5])
	body := data[6:]
	for i := range n {
		if len(body) < 2 || int(body[1]) > len(body)-2 {
			return r, fmt.Errorf("%w: device identification: object %d of %d truncated", ErrMalformed, i+1, n)
		}
		l := int(body[1])
		r.Objects = append(r.Objects, Object{ID: body[0], Value: body[2 : 2+l : 2+l]})
		body = body[2+l:]
	}
	if len(body) != 0 {
		return r, fmt.Errorf("%w: device identification: %d bytes after %d objects", ErrMalformed, len(body), n)
	}
	return r, nil
}
