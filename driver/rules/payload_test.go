package rules

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// saveOf renders a ruleset's family as iptables-save would print it after a fresh apply, plus foreign lines.
func saveOf(rs Ruleset, f Family, foreign map[table][]string) string {
	var b strings.Builder
	payload := rs.Payload(f)
	for _, block := range strings.SplitAfter(payload, "COMMIT\n") {
		if block == "" {
			continue
		}
		lines := strings.Split(strings.TrimSuffix(block, "COMMIT\n"), "\n")
		b.WriteString(lines[0] + "\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
		for _, l := range lines[1:] {
			if l != "" {
				b.WriteString(l + "\n")
			}
		}
		for _, l := range foreign[table(strings.TrimPrefix(lines[0], "*"))] {
			b.WriteString(l + "\n")
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}

func TestReplaceAndCleanupPayloads(t *testing.T) {
	old := buildCase(t, goldenCase{name: "dns", spec: Spec{DNSCapture: true}, env: Env{Nameservers: twoNameservers}})
	foreign := map[table][]string{tableNat: {"-A OUTPUT -d 10.9.9.9/32 -j RETURN"}}
	saved, err := ParseSave(saveOf(old, IPv4, foreign))
	if err != nil {
		t.Fatal(err)
	}
	owner := Owner{AllocID: testAlloc}
	if err := saved.CheckOwner(owner); err != nil {
		t.Fatal(err)
	}
	present := saved.Present(owner)
	oldV4, _ := old.Family(IPv4)
	if d := oldV4.Diff(present); len(d) != 0 {
		t.Fatalf("Diff of identical state: %v", d)
	}
	updated, _ := buildCase(t, goldenCase{name: "defaults"}).Family(IPv4)
	if d := updated.Diff(present); len(d) == 0 {
		t.Fatal("Diff found no difference between DNS and default rulesets")
	}
	replace := updated.ReplacePayload(present)
	for _, want := range []string{
		"-D OUTPUT -m comment --comment \"istio-sidecar:alloc=" + testAlloc + "\" -j ISTIO_OUTPUT_DNS\n",
		"-F ISTIO_OUTPUT_DNS\n", "-X ISTIO_OUTPUT_DNS\n", "-D OUTPUT -m comment",
	} {
		if !strings.Contains(replace, want) {
			t.Errorf("replace payload lacks %q:\n%s", want, replace)
		}
	}
	if strings.Contains(replace, "10.9.9.9") {
		t.Errorf("replace payload names a foreign rule:\n%s", replace)
	}
	cleanup := CleanupPayload(present)
	if strings.Contains(cleanup, "10.9.9.9") || strings.Contains(cleanup, "-A ") || !strings.Contains(cleanup, "-X ISTIO_OUTPUT\n") {
		t.Errorf("bad cleanup payload:\n%s", cleanup)
	}
	if CleanupPayload(Present{}) != "" {
		t.Error("cleanup of nothing is not empty")
	}
}

func TestCheckOwner(t *testing.T) {
	rs := buildCase(t, goldenCase{name: "defaults"})
	other := strings.ReplaceAll(saveOf(rs, IPv4, nil), testAlloc, "other-alloc")
	saved, _ := ParseSave(other)
	if err := saved.CheckOwner(Owner{AllocID: testAlloc}); !errors.Is(err, ErrOtherOwner) {
		t.Errorf("err %v, want ErrOtherOwner", err)
	}
	if got := saved.Owners(); len(got) != 1 || got[0] != "other-alloc" {
		t.Errorf("Owners = %v", got)
	}
	istio, _ := ParseSave("*nat\n:OUTPUT ACCEPT [0:0]\n:ISTIO_OUTPUT - [0:0]\n-A OUTPUT -j ISTIO_OUTPUT\nCOMMIT\n")
	if err := istio.CheckOwner(Owner{AllocID: testAlloc}); !errors.Is(err, ErrForeignRules) {
		t.Errorf("err %v, want ErrForeignRules", err)
	}
}

func TestTagParsing(t *testing.T) {
	cases := map[string]string{
		`-A OUTPUT -m comment --comment "istio-sidecar:alloc=abc" -j X`:     "abc",
		`-A OUTPUT -m comment --comment istio-sidecar:alloc=abc -j X`:       "abc",
		`-A OUTPUT -m comment --comment "istio-sidecar:alloc=abc def" -j X`: "",
		`-A OUTPUT -m comment --comment "xistio-sidecar:alloc=abc" -j X`:    "",
		`-A OUTPUT -m comment --comment "istio-sidecar:alloc=abc"`:          "abc",
	}
	for line, want := range cases {
		if got := tagOwner(line); got != want {
			t.Errorf("tagOwner(%q) = %q, want %q", line, got, want)
		}
	}
	if _, err := ParseSave("*nat\n-I OUTPUT 1 -j X\nCOMMIT\n"); err == nil {
		t.Error("ParseSave accepted an unknown line")
	}
}

// tagOracle is the tag's grammar as a regular expression, the reference tagOwner's scanner is checked against.
var tagOracle = regexp.MustCompile(`(?:^| )-m comment --comment (?:"` + regexp.QuoteMeta(TagPrefix) +
	`([A-Za-z0-9._-]+)"|` + regexp.QuoteMeta(TagPrefix) + `([A-Za-z0-9._-]+))(?: |$)`)

func FuzzTagOwner(f *testing.F) {
	for _, s := range []string{
		`-A OUTPUT -m comment --comment "istio-sidecar:alloc=abc" -j X`,
		`-A OUTPUT -m comment --comment "other" -m comment --comment istio-sidecar:alloc=a.b_c-d`,
		`-A X-m comment --comment "istio-sidecar:alloc=abc"`,
		`-m comment --comment "istio-sidecar:alloc=" -j X`,
		`-A OUTPUT -m comment --comment "istio-sidecar:alloc=abc"x -j X`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		want := ""
		if m := tagOracle.FindStringSubmatch(line); m != nil {
			want = m[1] + m[2]
		}
		if got := tagOwner(line); got != want {
			t.Fatalf("tagOwner(%q) = %q, the grammar says %q", line, got, want)
		}
	})
}
