package watch

import (
	"errors"

	"github.com/hashicorp/nomad/api"
)

// isNotFound is Nomad's answer for a job that was purged.
func isNotFound(err error) bool {
	var ue api.UnexpectedResponseError
	if errors.As(err, &ue) {
		return ue.StatusCode() == 404
	}
	var uep *api.UnexpectedResponseError
	return errors.As(err, &uep) && uep.StatusCode() == 404
}
