package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Audio is a recording decoded from a 16-bit PCM WAV file: one slice of samples
// (scaled to [-1, 1)) per channel.
type Audio struct {
	Rate     int
	Channels [][]float64
}

// ErrNotPCM16 is returned by ParseWAV for a file that is not 16-bit PCM WAV.
var ErrNotPCM16 = errors.New("not a 16-bit PCM WAV file")

// ParseWAV decodes a 16-bit PCM WAV file (what FreeSWITCH's uuid_record and
// record_session write for a .wav path). Unknown chunks are skipped; a data chunk
// cut short (a file still being written) is read as far as it goes.
func ParseWAV(b []byte) (Audio, error) {
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return Audio{}, fmt.Errorf("%w: no RIFF/WAVE header", ErrNotPCM16)
	}
	var rate, channels int
	for p := 12; p+8 <= len(b); {
		id, size := string(b[p:p+4]), int(binary.LittleEndian.Uint32(b[p+4:p+8]))
		body := b[p+8:]
		if size < len(body) {
			body = body[:size]
		}
		switch id {
		case "fmt ":
			if len(body) < 16 {
				return Audio{}, fmt.Errorf("%w: fmt chunk of %d bytes", ErrNotPCM16, len(body))
			}
			format, bits := binary.LittleEndian.Uint16(body[0:2]), binary.LittleEndian.Uint16(body[14:16])
			if format != 1 || bits != 16 {
				return Audio{}, fmt.Errorf("%w: format %d, %d bits", ErrNotPCM16, format, bits)
			}
			channels, rate = int(binary.LittleEndian.Uint16(body[2:4])), int(binary.LittleEndian.Uint32(body[4:8]))
		case "data":
			if channels < 1 || rate < 1 {
				return Audio{}, fmt.Errorf("%w: data before a valid fmt chunk", ErrNotPCM16)
			}
			return Audio{Rate: rate, Channels: deinterleave(body, channels)}, nil
		}
		p += 8 + size + size%2 // chunks are padded to an even size
	}
	return Audio{}, fmt.Errorf("%w: no data chunk", ErrNotPCM16)
}

// deinterleave splits little-endian 16-bit frames of n channels.
func deinterleave(data []byte, n int) [][]float64 {
	frames := len(data) / (2 * n)
	out := make([][]float64, n)
	for c := range out {
		out[c] = make([]float64, frames)
		for i := range frames {
			out[c][i] = float64(int16(binary.LittleEndian.Uint16(data[2*(i*n+c):]))) / 32768
		}
	}
	return out
}

// toneBlock is the length of the blocks ToneLevel measures: 50 ms is a 20 Hz wide
// bin, narrow enough to tell the lab's tones (440, 1000, 2000 Hz) and the busy tone
// (480+620 Hz) apart, wide enough for a tone a little off its nominal frequency.
const toneBlock = 50 * time.Millisecond

// ToneLevel is the amplitude of the hz component of samples (1 = a full-scale sine):
// a Goertzel filter over Hann-windowed blocks of 50 ms, the power averaged over the
// blocks. A tone heard for only part of the recording counts in proportion (its
// level times the square root of the share of time it was heard). Too few samples
// for one block give 0.
func ToneLevel(samples []float64, rate, hz int) float64 {
	n := rate * int(toneBlock/time.Millisecond) / 1000
	if n < 2 || len(samples) < n {
		return 0
	}
	window := make([]float64, n)
	var wsum float64
	for i := range window {
		window[i] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(n-1))
		wsum += window[i]
	}
	coeff := 2 * math.Cos(2*math.Pi*float64(hz)/float64(rate))
	var power float64
	blocks := 0
	for start := 0; start+n <= len(samples); start += n {
		var s1, s2 float64
		for i, x := range samples[start : start+n] {
			s0 := x*window[i] + coeff*s1 - s2
			s2, s1 = s1, s0
		}
		power += s1*s1 + s2*s2 - coeff*s1*s2
		blocks++
	}
	// A sine of amplitude A gives |X| = A*sum(window)/2 in its bin.
	return 2 * math.Sqrt(power/float64(blocks)) / wsum
}

// EncodeWAV is a 16-bit PCM WAV file of rate Hz with one channel per slice of
// samples in [-1, 1] (all of one length): what the lab writes where a PBX expects a
// recording.
func EncodeWAV(rate int, channels ...[]float64) []byte {
	n := len(channels)
	le := binary.LittleEndian
	fmtChunk := make([]byte, 16)
	le.PutUint16(fmtChunk[0:], 1)
	le.PutUint16(fmtChunk[2:], uint16(n))
	le.PutUint32(fmtChunk[4:], uint32(rate))
	le.PutUint32(fmtChunk[8:], uint32(rate*2*n))
	le.PutUint16(fmtChunk[12:], uint16(2*n))
	le.PutUint16(fmtChunk[14:], 16)
	data := make([]byte, 0, 2*n*len(channels[0]))
	for i := range channels[0] {
		for _, c := range channels {
			data = le.AppendUint16(data, uint16(int16(c[i]*32767)))
		}
	}
	chunk := func(id string, body []byte) []byte {
		b := append([]byte(id), le.AppendUint32(nil, uint32(len(body)))...)
		b = append(b, body...)
		if len(body)%2 == 1 {
			b = append(b, 0)
		}
		return b
	}
	body := append([]byte("WAVE"), chunk("fmt ", fmtChunk)...)
	body = append(body, chunk("data", data)...)
	return chunk("RIFF", body)
}

// ToneWAV is d of a hz tone at half scale, 8 kHz mono 16-bit WAV.
func ToneWAV(hz int, d time.Duration) []byte {
	const rate = 8000
	samples := make([]float64, int(d.Seconds()*rate))
	for i := range samples {
		samples[i] = 0.5 * math.Sin(2*math.Pi*float64(hz)*float64(i)/rate)
	}
	return EncodeWAV(rate, samples)
}
