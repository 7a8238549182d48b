package catalog_test

import (
	"os"
	"testing"

	"github.com/pgguard/pgguard/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m)) }
