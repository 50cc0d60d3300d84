// AudioWorklet for the demo page: microphone float32 at the context rate -> PCM16 mono at
// `targetRate` (default 16 kHz), posted to the page in 20 ms frames (ArrayBuffer, transferred).
// Downsampling averages the input samples that fall into each output sample: a crude low-pass
// that keeps the ratio exact for any context rate (44.1 kHz, 48 kHz, ...), enough for speech.

class Pcm16Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.targetRate = opts.targetRate || 16000;
    this.ratio = sampleRate / this.targetRate; // `sampleRate` is the worklet global
    this.frameSamples = Math.round(this.targetRate / 50);
    this.frame = new Int16Array(this.frameSamples);
    this.fill = 0;
    this.phase = 0;
    this.sum = 0;
    this.count = 0;
    this.running = true;
    this.port.onmessage = (e) => { if (e.data === "stop") this.running = false; };
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) {
      for (let i = 0; i < channel.length; i++) {
        this.sum += channel[i];
        this.count += 1;
        this.phase += 1;
        if (this.phase >= this.ratio) {
          this.phase -= this.ratio;
          this.push(this.sum / this.count);
          this.sum = 0;
          this.count = 0;
        }
      }
    }
    return this.running;
  }

  push(value) {
    const v = Math.max(-1, Math.min(1, value));
    this.frame[this.fill++] = v < 0 ? Math.round(v * 0x8000) : Math.round(v * 0x7fff);
    if (this.fill === this.frameSamples) {
      this.port.postMessage(this.frame.buffer, [this.frame.buffer]);
      this.frame = new Int16Array(this.frameSamples);
      this.fill = 0;
    }
  }
}

registerProcessor("pcm16-capture", Pcm16Capture);
