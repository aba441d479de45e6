//go:build !unix && !windows

package filelock

import (
	"errors"
	"os"
)

// Systems without file locks (plan9, js, wasip1) cannot take turns safely,
// so every lock fails rather than pretending.

func lock(*os.File) error            { return errors.ErrUnsupported }
func tryLock(*os.File) (bool, error) { return false, errors.ErrUnsupported }
func unlock(*os.File) error          { return errors.ErrUnsupported }
