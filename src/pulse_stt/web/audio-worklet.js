// AudioWorklet: microphone audio at the context's rate → 16 kHz mono little-endian int16
// frames for `encoding=linear16&sample_rate=16000`.
//
// Resampling is a windowed-sinc interpolator (Blackman window, 10 zero crossings, cut-off
// at 90 % of the target Nyquist) so that 44.1/48 kHz input does not alias into the speech
// band; the kernel is tabulated once and read with linear interpolation.

const ZERO_CROSSINGS = 10;
const TABLE_STEPS = 512; // kernel samples per input sample

class Pcm16Downsampler extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate = 16000, frameMs = 40 } = options.processorOptions ?? {};
    // `sampleRate` is the AudioWorkletGlobalScope's rate (the context's).
    this.step = sampleRate / targetRate; // input samples per output sample
    this.frame = new Int16Array(Math.round((targetRate * frameMs) / 1000));
    this.filled = 0;
    this.peak = 0;
    const cutoff = Math.min(0.5, (0.45 * targetRate) / sampleRate); // cycles per input sample
    this.halfWidth = this.step === 1 ? 0 : Math.ceil(ZERO_CROSSINGS / (2 * cutoff));
    this.table = this.halfWidth ? kernelTable(cutoff, this.halfWidth) : null;
    // Input history; `position` is where the next output sample lies in it.
    this.input = new Float32Array(4096 + 2 * this.halfWidth);
    this.count = this.halfWidth; // leading zeros: the filter has a past from the start
    this.position = this.halfWidth;
    this.port.onmessage = (event) => {
      if (event.data?.type === "flush") {
        this.emit();
        this.port.postMessage({ type: "flushed" });
      }
    };
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const length = channels[0].length;
    this.reserve(length);
    for (let i = 0; i < length; i++) {
      let sum = 0;
      for (const channel of channels) sum += channel[i];
      this.input[this.count + i] = sum / channels.length;
    }
    this.count += length;
    this.resample();
    return true;
  }

  reserve(extra) {
    if (this.count + extra <= this.input.length) return;
    const grown = new Float32Array(2 * (this.count + extra));
    grown.set(this.input.subarray(0, this.count));
    this.input = grown;
  }

  resample() {
    const { input, halfWidth, table } = this;
    while (this.position + halfWidth < this.count) {
      let value;
      if (halfWidth === 0) {
        value = input[this.position];
      } else {
        const center = this.position;
        const first = Math.ceil(center - halfWidth);
        const last = Math.floor(center + halfWidth);
        value = 0;
        for (let i = first; i <= last; i++) {
          const at = Math.abs(center - i) * TABLE_STEPS;
          const index = at | 0;
          const fraction = at - index;
          value += input[i] * (table[index] + fraction * (table[index + 1] - table[index]));
        }
      }
      this.push(value);
      this.position += this.step;
    }
    // Forget input no output sample can reach any more.
    const drop = Math.floor(this.position - halfWidth);
    if (drop > 0) {
      input.copyWithin(0, drop, this.count);
      this.count -= drop;
      this.position -= drop;
    }
  }

  push(value) {
    const clipped = Math.max(-1, Math.min(1, value));
    this.peak = Math.max(this.peak, Math.abs(clipped));
    this.frame[this.filled++] = Math.round(clipped * 32767);
    if (this.filled === this.frame.length) this.emit();
  }

  emit() {
    if (this.filled === 0) return;
    const pcm = this.frame.slice(0, this.filled); // Int16Array: little-endian on every browser platform
    this.port.postMessage({ type: "audio", pcm: pcm.buffer, peak: this.peak }, [pcm.buffer]);
    this.filled = 0;
    this.peak = 0;
  }
}

function kernelTable(cutoff, halfWidth) {
  const size = halfWidth * TABLE_STEPS + 2;
  const table = new Float32Array(size);
  for (let k = 0; k < size; k++) {
    const u = k / TABLE_STEPS; // distance in input samples
    if (u >= halfWidth) continue;
    const x = 2 * cutoff * u;
    const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
    const w = u / halfWidth; // 0 at the centre … 1 at the edge
    const blackman = 0.42 + 0.5 * Math.cos(Math.PI * w) + 0.08 * Math.cos(2 * Math.PI * w);
    table[k] = 2 * cutoff * sinc * blackman;
  }
  return table;
}

registerProcessor("pcm16-downsampler", Pcm16Downsampler);
