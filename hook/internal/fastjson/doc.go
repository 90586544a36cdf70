// Package fastjson reads JSON for nsrel-hook without encoding/json's
// reflection and tokenizer, which cost a hook (a new process at every
// container stage) more than its small inputs are worth: [Parse] reads
// plain well-formed JSON into a tree with byte offsets (the config file,
// the OCI state) and [Unescape] gives the meaning of JSON's
// one-character escapes (also used by the audit record codec). Each
// reader gives up on anything unusual, and its caller then takes the
// encoding/json path, so what is accepted and how errors read do not
// change; differential fuzz tests in hook/policy, hook/audit and hook
// check that.
package fastjson
