package lab

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

// sines is rate Hz samples of the sum of tones (hz: amplitude) for d seconds.
func sines(rate int, d float64, tones map[int]float64) []float64 {
	out := make([]float64, int(float64(rate)*d))
	for i := range out {
		for hz, a := range tones {
			out[i] += a * math.Sin(2*math.Pi*float64(hz)*float64(i)/float64(rate))
		}
	}
	return out
}

// wav encodes channels (equal lengths) as a 16-bit PCM WAV file with an extra
// chunk before the data, as some writers add.
func wav(rate int, channels ...[]float64) []byte {
	// EncodeWAV's file with an unknown chunk after fmt, which ParseWAV must skip.
	b := EncodeWAV(rate, channels...)
	list := []byte("LIST\x03\x00\x00\x00odd\x00")
	out := append(append(append([]byte{}, b[:36]...), list...), b[36:]...)
	binary.LittleEndian.PutUint32(out[4:], uint32(len(out)-8))
	return out
}

func TestToneLevel(t *testing.T) {
	const rate = 8000
	mix := sines(rate, 1, map[int]float64{440: 0.3, 1000: 0.1})

	t.Run("each tone of a mix is measured at its own amplitude", func(t *testing.T) {
		for hz, want := range map[int]float64{440: 0.3, 1000: 0.1} {
			if got := ToneLevel(mix, rate, hz); math.Abs(got-want) > 0.01 {
				t.Errorf("%d Hz: level %.4f, want %.2f", hz, got, want)
			}
		}
	})
	t.Run("a tone that is not there measures near zero beside loud ones", func(t *testing.T) {
		for _, hz := range []int{2000, 480, 620} {
			if got := ToneLevel(mix, rate, hz); got > 0.001 {
				t.Errorf("%d Hz: level %.5f in a mix of 440 and 1000 Hz, want < 0.001", hz, got)
			}
		}
	})
	t.Run("a tone heard half the time counts less than one heard throughout", func(t *testing.T) {
		half := append(sines(rate, 0.5, map[int]float64{2000: 0.3}), make([]float64, rate/2)...)
		got := ToneLevel(half, rate, 2000)
		if want := 0.3 * math.Sqrt(0.5); math.Abs(got-want) > 0.02 {
			t.Errorf("level %.4f, want about %.3f", got, want)
		}
	})
	t.Run("silence and too short a recording measure zero", func(t *testing.T) {
		if got := ToneLevel(make([]float64, rate), rate, 1000); got != 0 {
			t.Errorf("silence: %v", got)
		}
		if got := ToneLevel(mix[:100], rate, 440); got != 0 {
			t.Errorf("100 samples: %v", got)
		}
	})
}

func TestParseWAV(t *testing.T) {
	const rate = 8000
	left, right := sines(rate, 0.5, map[int]float64{440: 0.5}), sines(rate, 0.5, map[int]float64{2000: 0.5})

	t.Run("a stereo file gives each channel its own samples", func(t *testing.T) {
		a, err := ParseWAV(wav(rate, left, right))
		if err != nil {
			t.Fatal(err)
		}
		if a.Rate != rate || len(a.Channels) != 2 || len(a.Channels[0]) != len(left) {
			t.Fatalf("rate %d, %d channels of %d samples; want %d, 2 of %d", a.Rate, len(a.Channels), len(a.Channels[0]), rate, len(left))
		}
		if l, r := ToneLevel(a.Channels[0], rate, 440), ToneLevel(a.Channels[1], rate, 440); l < 0.45 || r > 0.01 {
			t.Errorf("440 Hz: left %.3f, right %.3f; want it on the left only", l, r)
		}
	})
	t.Run("a data chunk cut short is read as far as it goes", func(t *testing.T) {
		b := wav(rate, left)
		a, err := ParseWAV(b[:len(b)-1000])
		if err != nil || len(a.Channels[0]) != len(left)-500 {
			t.Fatalf("err %v, %d samples; want %d", err, len(a.Channels[0]), len(left)-500)
		}
	})
	for name, b := range map[string][]byte{
		"not a RIFF file": []byte("OggS........"),
		"no data chunk":   wav(rate, left)[:44-8],
		"8-bit samples": func() []byte {
			b := wav(rate, left)
			binary.LittleEndian.PutUint16(b[34:], 8)
			return b
		}(),
	} {
		t.Run(name+" is refused", func(t *testing.T) {
			if _, err := ParseWAV(b); !errors.Is(err, ErrNotPCM16) {
				t.Errorf("err %v, want ErrNotPCM16", err)
			}
		})
	}
}
