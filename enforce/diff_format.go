package enforce

// FormatDiff renders a diff one change per line, "+ profile teacher",
// "- user bob", "~ user alice", "~ protected", the form `callwarden
// profiles apply` prints and the audit trail records.
func FormatDiff(d PolicyDiff) []string {
	var out []string
	add := func(sign, kind string, names []string) {
		for _, n := range names {
			out = append(out, sign+" "+kind+" "+n)
		}
	}
	add("+", "profile", d.AddedProfiles)
	add("-", "profile", d.RemovedProfiles)
	add("~", "profile", d.ChangedProfiles)
	add("+", "user", d.AddedUsers)
	add("-", "user", d.RemovedUsers)
	add("~", "user", d.ChangedUsers)
	if d.ProtectedChanged {
		out = append(out, "~ protected")
	}
	return out
}
