//go:build !unix

package main

import "time"

// benchSelfCPU is not measured on this platform.
func benchSelfCPU() time.Duration { return 0 }

// benchProcCPU is not measured on this platform.
func benchProcCPU(int) time.Duration { return 0 }
