package ref

// The distribution-spec grammar for tags and repository names, checked by
// hand: the equivalent regular expressions cost ~130 KB and a few hundred
// microseconds to compile at every process start.

// ValidTag reports whether s matches [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
func ValidTag(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isLowerAlnum(c), c >= 'A' && c <= 'Z', c == '_':
		case i > 0 && (c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// ValidRepository reports whether s is a repository name: components of
// [a-z0-9]+ joined by '.', '_', '__' or runs of '-', separated by '/'.
func ValidRepository(s string) bool {
	if s == "" {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '/' {
			if !validComponent(s[start:i]) {
				return false
			}
			start = i + 1
		}
	}
	return true
}

func validComponent(c string) bool {
	i := 0
	for {
		j := i
		for j < len(c) && isLowerAlnum(c[j]) {
			j++
		}
		if j == i {
			return false // empty, or a separator not followed by [a-z0-9]
		}
		if j == len(c) {
			return true
		}
		switch c[j] {
		case '.':
			j++
		case '_':
			j++
			if j < len(c) && c[j] == '_' {
				j++
			}
		case '-':
			for j < len(c) && c[j] == '-' {
				j++
			}
		default:
			return false
		}
		i = j
	}
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
