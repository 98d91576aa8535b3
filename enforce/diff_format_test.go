package enforce_test

import (
	"slices"
	"testing"

	"github.com/callwarden/callwarden/enforce"
)

func TestFormatDiff(t *testing.T) {
	got := enforce.FormatDiff(enforce.PolicyDiff{AddedProfiles: []string{"teacher"}, RemovedUsers: []string{"bob"},
		ChangedUsers: []string{"alice"}, ProtectedChanged: true})
	want := []string{"+ profile teacher", "- user bob", "~ user alice", "~ protected"}
	if !slices.Equal(got, want) {
		t.Errorf("FormatDiff = %q, want %q", got, want)
	}
}
