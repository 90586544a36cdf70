package nriplugin

import (
	"os"
	"testing"

	"github.com/nsrel/nsrel/internal/nstest"
)

// TestMain removes the commands the tests built (nstest.Tool).
func TestMain(m *testing.M) {
	code := m.Run()
	nstest.RemoveTools()
	os.Exit(code)
}
