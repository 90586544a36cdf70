package recorder

import (
	"testing"

	"github.com/nsrel/nsrel/internal/nstest"
)

// TestMain removes the commands the tests built (nstest.Tool).
func TestMain(m *testing.M) { nstest.Main(m) }
