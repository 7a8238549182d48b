package sqldepth

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// smallStackEnv marks a run of this test binary as the child of
// TestSmallStacksLowerTheLimit, started under a small stack.
const smallStackEnv = "SQLDEPTH_SMALL_STACK_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(smallStackEnv) != "" {
		deepestAllowedParse()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// deepestAllowedParse is the child's part: it reports the stack and the
// limit it found, and puts every construct, at the deepest nesting TooDeep
// lets through, through every walker. An overflow ends it with an error.
func deepestAllowedParse() {
	bytes, limit := Stack()
	fmt.Printf("stack %d bytes, limit %d\n", bytes, limit)
	for _, c := range deepConstructs {
		parseAll(c.make(deepestAllowed(c, 4*MaxLimit)))
	}
}

// TestSmallStacksLowerTheLimit runs the deepest statements the estimate
// lets through, of every construct, in a process whose stacks are small
// (ulimit -s): on 256 KiB a chain of 1,000 operators, which a fixed limit
// let through, overflowed the stack and ended the process.
func TestSmallStacksLowerTheLimit(t *testing.T) {
	for _, kib := range []int{128, 256, 1024} {
		t.Run(strconv.Itoa(kib)+"KiB", func(t *testing.T) {
			cmd := exec.Command("/bin/sh", "-c", fmt.Sprintf(`ulimit -s %d && exec "$0"`, kib), os.Args[0])
			cmd.Env = append(os.Environ(), smallStackEnv+"=1")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child under ulimit -s %d: %v\n%s", kib, err, tail(out))
			}
			want := fmt.Sprintf("stack %d bytes, limit %d", kib<<10, limitFor(int64(kib)<<10))
			if !strings.Contains(string(out), want) {
				t.Fatalf("child did not report %q:\n%s", want, tail(out))
			}
			if limitFor(int64(kib)<<10) >= MaxLimit {
				t.Fatalf("%d KiB keeps the full limit", kib)
			}
		})
	}
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
