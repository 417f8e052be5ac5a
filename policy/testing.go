package policy

// NewClaimsForTest builds Claims from a raw JWT payload (a JSON object)
// exactly as a verified token's payload is decoded, without any signature
// or policy check. It exists so that packages rendering allowed decisions
// (such as upstream) can be tested; never use it on untrusted input in
// production code: the result has not been verified.
func NewClaimsForTest(raw []byte) (*Claims, error) {
	return decodeClaims(append([]byte(nil), raw...), &header{})
}
