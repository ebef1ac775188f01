package rules

import (
	"os"
	"testing"
)

// BenchmarkParseSave parses the 1000-excluded-CIDRs payload (it reads as iptables-save output): Cleanup and a
// re-apply parse a save of that size every time.
func BenchmarkParseSave(b *testing.B) {
	data, err := os.ReadFile("testdata/golden/exclude-1000-cidrs.golden")
	if err != nil {
		b.Fatal(err)
	}
	text := string(data)
	owner := Owner{AllocID: testAlloc}
	b.ReportAllocs()
	for b.Loop() {
		s, err := ParseSave(text)
		if err != nil {
			b.Fatal(err)
		}
		if s.Present(owner).Empty() {
			b.Fatal("nothing of ours found")
		}
	}
}
