//go:build !unix

package bench

import "time"

// selfCPU is not measured on this platform.
func selfCPU() time.Duration { return 0 }

// procCPU is not measured on this platform.
func procCPU(int) time.Duration { return 0 }
