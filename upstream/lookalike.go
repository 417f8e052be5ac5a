package upstream

import "strings"

// Lookalikes recognises the spellings of a set of header names that an
// upstream may read as one of them although they are different names in
// HTTP: CGI, WSGI (Django, Flask), PHP and Rack turn both "X-Client-Id" and
// "X_Client_Id" into HTTP_X_CLIENT_ID. Adapters remove a client's copies of
// the headers they set by exact name (case-insensitively) and use Lookalikes
// for the names with an underscore, so such a copy cannot stand in for the
// real header either.
type Lookalikes map[string]struct{}

// NewLookalikes builds the set for names (any case, '-' or '_').
func NewLookalikes(names []string) Lookalikes {
	l := make(Lookalikes, len(names))
	for _, n := range names {
		l[fold(n)] = struct{}{}
	}
	return l
}

// Match reports whether name contains an underscore and reads, with '_' as
// '-' and in any case, as one of the set's names. Names without an
// underscore never match: exact names are the caller's job (owned names
// have no '_': CheckHeaderName refuses it), and the common path costs one
// byte scan and no allocation.
func (l Lookalikes) Match(name string) bool {
	if strings.IndexByte(name, '_') < 0 {
		return false
	}
	_, ok := l[fold(name)]
	return ok
}

func fold(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}
