package vocab

// Version is nsrel's version, printed by --version and recorded in every
// audit record. Release builds set it with
// -ldflags "-X github.com/nsrel/nsrel/internal/vocab.Version=...".
var Version = "0.1.0-dev"
