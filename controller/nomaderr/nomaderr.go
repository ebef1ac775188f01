// Package nomaderr reads the HTTP status of an error from Nomad's api package, which returns its
// UnexpectedResponseError both as a value and as a pointer.
package nomaderr

import (
	"errors"

	"github.com/hashicorp/nomad/api"
)

// Status is the HTTP status of a Nomad API error, 0 when err carries none.
func Status(err error) int {
	var ue api.UnexpectedResponseError
	if errors.As(err, &ue) {
		return ue.StatusCode()
	}
	var uep *api.UnexpectedResponseError
	if errors.As(err, &uep) {
		return uep.StatusCode()
	}
	return 0
}

// NotFound reports a 404: a job purged, a Variable or namespace not there.
func NotFound(err error) bool { return Status(err) == 404 }
