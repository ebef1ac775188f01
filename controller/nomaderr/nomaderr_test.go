package nomaderr

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hashicorp/nomad/api"
)

// A 404 from a real Nomad HTTP server, wrapped as callers wrap it, reads as not found; other errors do not.
func TestStatus_ReadsNomadsErrors(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "job not found", http.StatusNotFound)
	}))
	defer ts.Close()
	c, err := api.NewClient(&api.Config{Address: ts.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Jobs().Info("gone", nil)
	if err == nil {
		t.Fatal("no error from a 404")
	}
	wrapped := fmt.Errorf("reading job: %w", err)
	if !NotFound(err) || !NotFound(wrapped) || Status(wrapped) != 404 {
		t.Errorf("a 404 (%v) does not read as not found", err)
	}
	if NotFound(errors.New("connection refused")) || Status(nil) != 0 {
		t.Error("an error without a status reads as one")
	}
}
