// Package jsonesc holds what the hook's hand-written JSON readers share:
// the meaning of JSON's one-character escapes. The readers (the audit
// record codec in hook/audit and the config parser in hook/policy) exist
// because encoding/json's reflection and tokenizer cost a hook, which is
// a new process at every container stage, more than its data is worth;
// each falls back to encoding/json for anything unusual.
package jsonesc
