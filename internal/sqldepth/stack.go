package sqldepth

/*
#include <pthread.h>
#include <stddef.h>

// default_thread_stack is the stack a thread created without attributes
// gets, as the Go runtime's threads are in a program that uses cgo: glibc
// takes it from RLIMIT_STACK at start, musl has a fixed default.
static size_t default_thread_stack(void) {
	pthread_attr_t attr;
	size_t size = 0;
	if (pthread_attr_init(&attr) != 0) {
		return 0;
	}
	if (pthread_attr_getstacksize(&attr, &size) != 0) {
		size = 0;
	}
	pthread_attr_destroy(&attr);
	return size;
}
*/
import "C"

import (
	"sync"
	"syscall"
)

const (
	// bytesPerUnit is the stack one unit of Estimate may take in the
	// parser's walkers, with a margin of four: the hungriest construct
	// measured (a chain of binary operators) crashed at about 400 bytes
	// per unit.
	bytesPerUnit = 1600
	// stackReserve is what the way into the C code takes before any
	// recursion starts.
	stackReserve = 64 << 10
)

// rlimInfinity is RLIM_INFINITY as the kernel reports it in a uint64.
const rlimInfinity = ^uint64(0)

var stackOnce = sync.OnceValues(measureStack)

// Stack is the smallest C stack a parse may run on, in bytes, and the
// nesting Limit it allows. A parse runs on whichever thread the Go
// runtime picks: one it created (the default thread stack) or the
// process's first (bounded by RLIMIT_STACK).
func Stack() (bytes int64, limit int) { return stackOnce() }

func measureStack() (int64, int) {
	size := int64(C.default_thread_stack())
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_STACK, &rl); err == nil && rl.Cur != rlimInfinity {
		if size <= 0 || int64(rl.Cur) < size {
			size = int64(rl.Cur)
		}
	}
	if size <= 0 {
		// Neither is known: assume the usual 8 MiB default.
		size = 8 << 20
	}
	return size, limitFor(size)
}

// limitFor is the nesting a stack of size bytes can take, at most MaxLimit.
func limitFor(size int64) int {
	n := (size - stackReserve) / bytesPerUnit
	return int(max(1, min(int64(MaxLimit), n)))
}
