//go:build !linux

package load

import (
	"errors"
	"time"
)

var errNoCPU = errors.New("reading CPU time needs Linux")

func selfCPU() (time.Duration, error) { return 0, errNoCPU }

func processCPU(int) (time.Duration, error) { return 0, errNoCPU }
