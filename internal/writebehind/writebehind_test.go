package writebehind

import "testing"

// TestValues: the latest value wins and is readable at once; a commit's Written drops only
// the values it carried, not newer ones put meanwhile; Forget and Close do what they say.
func TestValues(t *testing.T) {
	var v Values
	if got := v.Take(); got != nil {
		t.Fatalf("Take of nothing = %v", got)
	}
	buf := []byte("1")
	v.Put("cp", "a", buf)
	buf[0] = 'x' // Put kept a copy
	v.Put("cp", "a", []byte("2"))
	v.Put("cp", "b", nil)
	if got, ok := v.Get("cp", "a"); !ok || string(got) != "2" {
		t.Fatalf("Get a = %q, %v; want the latest, 2", got, ok)
	}
	if got, ok := v.Get("cp", "b"); !ok || got == nil || len(got) != 0 {
		t.Fatalf("Get b = %q, %v; want present and empty", got, ok)
	}
	taken := v.Take()
	if len(taken) != 2 || string(taken[Key{"cp", "a"}].Value) != "2" {
		t.Fatalf("Take = %v", taken)
	}
	v.Put("cp", "a", []byte("3")) // newer than the commit under way
	v.Written(taken)
	if got, ok := v.Get("cp", "a"); !ok || string(got) != "3" {
		t.Fatalf("after Written, a = %q, %v; want the newer 3 kept", got, ok)
	}
	if _, ok := v.Get("cp", "b"); ok {
		t.Fatal("b is still waiting after its commit")
	}
	v.Forget("cp", "a")
	if _, ok := v.Get("cp", "a"); ok {
		t.Fatal("Forget kept the value")
	}
	v.Put("cp", "c", []byte("4"))
	v.Close()
	if v.Put("cp", "d", []byte("5")) {
		t.Fatal("Put after Close succeeded")
	}
	if got := v.Take(); len(got) != 1 {
		t.Fatalf("Take after Close = %v; want the value put before it", got)
	}
}
