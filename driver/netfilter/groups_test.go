package netfilter

import (
	"os/user"
	"reflect"
	"testing"
)

// TestLookupGroups: names resolve through the host's group database; an unknown one is left for Parse.
func TestLookupGroups(t *testing.T) {
	g, err := user.LookupGroupId("0")
	if err != nil {
		t.Fatalf("this host has no group 0: %v", err)
	}
	got, err := LookupGroups([]string{g.Name, "isc-no-such-group"})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]uint32{g.Name: 0}; !reflect.DeepEqual(got, want) {
		t.Errorf("LookupGroups = %v, want %v", got, want)
	}
	if got, err := LookupGroups(nil); got != nil || err != nil {
		t.Errorf("no names: %v %v", got, err)
	}
}
