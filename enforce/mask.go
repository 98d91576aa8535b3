package enforce

// Mask replaces the last n digits of number with '*', keeping every other
// character (spaces, '+', dashes) in place: Mask("+33 1 23 45 67 89", 4)
// is "+33 1 23 45 ** **". It returns number unchanged, without allocating,
// when n <= 0.
func Mask(number string, n int) string {
	if n <= 0 || number == "" {
		return number
	}
	b := []byte(number)
	for i := len(b) - 1; i >= 0 && n > 0; i-- {
		if b[i] >= '0' && b[i] <= '9' {
			b[i] = '*'
			n--
		}
	}
	return string(b)
}
