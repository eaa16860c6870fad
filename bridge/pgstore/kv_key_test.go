package pgstore

import "testing"

// TestTextKey: keys with NUL (disabled targets) and backslashes map to distinct text keys.
func TestTextKey(t *testing.T) {
	keys := []string{"route\x00sink\x00", "route\\0sink\\0", "route\\\x00sink", "a\\b", "a\\\\b", "plain/key"}
	seen := map[string]string{}
	for _, k := range keys {
		tk := textKey(k)
		for i := range len(tk) {
			if tk[i] == 0 {
				t.Fatalf("textKey(%q) = %q holds NUL", k, tk)
			}
		}
		if other, dup := seen[tk]; dup {
			t.Errorf("textKey(%q) = textKey(%q) = %q", k, other, tk)
		}
		seen[tk] = k
	}
	if textKey("plain/key") != "plain/key" {
		t.Errorf("a plain key changed: %q", textKey("plain/key"))
	}
}
