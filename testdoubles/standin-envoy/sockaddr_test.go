package main

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
)

func TestDecodeSockaddr(t *testing.T) {
	v4 := make([]byte, 16)
	binary.NativeEndian.PutUint16(v4, afInet)
	binary.BigEndian.PutUint16(v4[2:], 8080)
	copy(v4[4:], []byte{10, 211, 0, 50})
	v6 := make([]byte, 28)
	binary.NativeEndian.PutUint16(v6, afInet6)
	binary.BigEndian.PutUint16(v6[2:], 443)
	a6 := netip.MustParseAddr("fd00::50").As16()
	copy(v6[8:], a6[:])

	for _, tc := range []struct {
		b    []byte
		want string
	}{{v4, "10.211.0.50:8080"}, {v6, "[fd00::50]:443"}} {
		got, err := decodeSockaddr(tc.b)
		if err != nil || got.String() != tc.want {
			t.Errorf("decodeSockaddr = %v, %v; want %s", got, err, tc.want)
		}
	}
	bad := make([]byte, 16)
	binary.NativeEndian.PutUint16(bad, 1) // AF_UNIX
	for _, b := range [][]byte{nil, v4[:6], v6[:20], bad} {
		if _, err := decodeSockaddr(b); err == nil {
			t.Errorf("decodeSockaddr(%x) succeeded", b)
		}
	}
}

// A /proc/net/tcp excerpt as written on a little-endian machine: an outbound client (uid 1000) whose
// connection to 10.211.0.50:8080 was redirected, and a listener owned by root.
const procNetTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:3A99 00000000:0000 0A 00000000:0000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0200D30A:A410 3200D30A:1F90 01 00000000:0000 00:00000000 00000000  1000        0 2 1 0000000000000000 20 4 30 10 -1
`

func TestFindSocketUID(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the excerpt is little-endian")
	}
	uid, ok := findSocketUID(strings.NewReader(procNetTCP), mustAddrPort("10.211.0.2:42000"), mustAddrPort("10.211.0.50:8080"))
	if !ok || uid != 1000 {
		t.Errorf("uid = %d, %v; want 1000", uid, ok)
	}
	if _, ok := findSocketUID(strings.NewReader(procNetTCP), mustAddrPort("10.211.0.2:42001"), mustAddrPort("10.211.0.50:8080")); ok {
		t.Error("matched a socket that is not there")
	}
}

func TestParseProcAddrIPv6(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("little-endian encoding")
	}
	// ::1 port 15000 as /proc/net/tcp6 prints it on little-endian.
	got, err := parseProcAddr("00000000000000000000000001000000:3A98")
	if err != nil || got != mustAddrPort("[::1]:15000") {
		t.Errorf("got %v, %v", got, err)
	}
}
