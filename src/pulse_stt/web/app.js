// pulse-stt browser page: microphone → WebSocket live captions, and file upload → REST.
//
// The API key typed here is kept in sessionStorage and only ever sent to POST /v1/tokens,
// which returns a short-lived token. The WebSocket carries that token as a subprotocol
// (["pulse-stt", "bearer.<token>"]) because browsers cannot set an Authorization header
// on a WebSocket; REST uploads send it as `Authorization: Bearer <token>`.

const LIVE_PATH = "/waves/v1/stt/live";
const REST_PATH = "/waves/v1/stt/";
const TOKENS_PATH = "/v1/tokens";
const KEY_STORAGE = "pulse-stt.api-key";
const SETTINGS_STORAGE = "pulse-stt.settings";
const TARGET_RATE = 16000;
const FRAME_MS = 40;
const CLOSE_WAIT_MS = 60000; // how long Stop waits for the server's last message
const TOKEN_MARGIN_MS = 30000; // mint a new token when the old one has less left

const $ = (id) => document.getElementById(id);

const ui = {
  key: $("api-key"),
  language: $("language"),
  itn: $("itn"),
  redactPci: $("redact-pci"),
  redactPii: $("redact-pii"),
  diarize: $("diarize"),
  keywords: $("keywords"),
  start: $("start"),
  stop: $("stop"),
  clear: $("clear"),
  status: $("status"),
  levelBar: $("level-bar"),
  captions: $("captions"),
  finals: $("finals"),
  partial: $("partial"),
  empty: $("captions-empty"),
  dropZone: $("drop-zone"),
  fileInput: $("file-input"),
  fileModel: $("file-model"),
  fileResult: $("file-result"),
  error: $("error"),
  errorText: $("error-text"),
  errorClose: $("error-close"),
};

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// ---------------------------------------------------------------- settings and errors

function restoreSettings() {
  ui.key.value = sessionStorage.getItem(KEY_STORAGE) ?? "";
  let saved = {};
  try {
    saved = JSON.parse(localStorage.getItem(SETTINGS_STORAGE) ?? "{}");
  } catch {
    saved = {};
  }
  if (saved.language && [...ui.language.options].some((o) => o.value === saved.language)) {
    ui.language.value = saved.language;
  }
  for (const name of ["itn", "redactPci", "redactPii", "diarize"]) {
    if (typeof saved[name] === "boolean") ui[name].checked = saved[name];
  }
  if (typeof saved.keywords === "string") ui.keywords.value = saved.keywords;
}

function saveSettings() {
  sessionStorage.setItem(KEY_STORAGE, ui.key.value.trim());
  const settings = {
    language: ui.language.value,
    itn: ui.itn.checked,
    redactPci: ui.redactPci.checked,
    redactPii: ui.redactPii.checked,
    diarize: ui.diarize.checked,
    keywords: ui.keywords.value,
  };
  localStorage.setItem(SETTINGS_STORAGE, JSON.stringify(settings)); // no secrets here
}

function showError(message) {
  ui.errorText.textContent = message;
  ui.error.hidden = false;
}

function clearError() {
  ui.error.hidden = true;
  ui.errorText.textContent = "";
}

function setStatus(text, state) {
  ui.status.textContent = text;
  ui.status.dataset.state = state;
}

async function errorMessage(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const detail = body?.message ?? response.statusText ?? "";
  const param = body?.param ? ` (parameter ${body.param})` : "";
  return `HTTP ${response.status}${param}: ${detail}`;
}

// ---------------------------------------------------------------- tokens

let cachedToken = null; // { key, token, expiresAt }

async function browserToken() {
  const key = ui.key.value.trim();
  if (!key) {
    ui.key.focus();
    throw new ApiError(0, "Enter an API key first (run `pulse-stt keys create --name NAME` on the server).");
  }
  if (cachedToken && cachedToken.key === key && cachedToken.expiresAt - Date.now() > TOKEN_MARGIN_MS) {
    return cachedToken.token;
  }
  const response = await fetch(TOKENS_PATH, {
    method: "POST",
    headers: { Authorization: `Bearer ${key}` },
  });
  if (!response.ok) {
    cachedToken = null;
    const message = await errorMessage(response);
    throw new ApiError(response.status, response.status === 401 ? `The API key was refused. ${message}` : message);
  }
  const body = await response.json();
  cachedToken = { key, token: body.token, expiresAt: Date.now() + body.expires_in * 1000 };
  return body.token;
}

// ---------------------------------------------------------------- query parameters

function transcriptParams(params) {
  params.set("language", ui.language.value);
  params.set("word_timestamps", "true"); // words carry the speaker labels
  if (ui.itn.checked) params.set("itn_normalize", "true");
  if (ui.redactPci.checked) params.set("redact_pci", "true");
  if (ui.redactPii.checked) params.set("redact_pii", "true");
  if (ui.diarize.checked) params.set("diarize", "true");
  return params;
}

function liveQuery() {
  const params = new URLSearchParams({ model: "pulse", encoding: "linear16", sample_rate: String(TARGET_RATE) });
  transcriptParams(params);
  const keywords = ui.keywords.value
    .split(",")
    .map((entry) => entry.trim())
    .filter(Boolean)
    .join(",");
  if (keywords) params.set("keywords", keywords);
  return params;
}

// ---------------------------------------------------------------- captions

function speakerRuns(words) {
  const runs = [];
  for (const word of words) {
    const speaker = word.speaker ?? null;
    const last = runs.at(-1);
    if (last && last.speaker === speaker) last.words.push(word.word);
    else runs.push({ speaker, words: [word.word] });
  }
  return runs;
}

function speakerLabel(speaker) {
  const label = document.createElement("span");
  label.className = `speaker-label speaker-${speaker % 8}`;
  label.textContent = `Speaker ${speaker + 1}`;
  return label;
}

// Fill `element` with a transcript, coloured by speaker when the words carry speakers.
function renderTranscript(element, message, previousSpeaker) {
  element.replaceChildren();
  const words = Array.isArray(message.words) ? message.words : [];
  const diarized = words.length > 0 && words.some((w) => Number.isInteger(w.speaker));
  if (!diarized) {
    element.textContent = message.transcript ?? "";
    return previousSpeaker;
  }
  let speaker = previousSpeaker;
  for (const run of speakerRuns(words)) {
    if (run.speaker !== null && run.speaker !== speaker) {
      element.append(speakerLabel(run.speaker));
      speaker = run.speaker;
    }
    const text = document.createElement("span");
    text.className = run.speaker === null ? "words" : `words speaker-${run.speaker % 8}`;
    text.textContent = run.words.join(" ") + " ";
    element.append(text);
  }
  return speaker;
}

const captions = {
  lastSpeaker: null,

  clear() {
    ui.finals.replaceChildren();
    ui.partial.replaceChildren();
    this.lastSpeaker = null;
    this.refresh();
  },

  partial(message) {
    renderTranscript(ui.partial, message, this.lastSpeaker);
    this.refresh();
  },

  final(message) {
    ui.partial.replaceChildren();
    if ((message.transcript ?? "").trim()) {
      const line = document.createElement("p");
      line.className = "final";
      this.lastSpeaker = renderTranscript(line, message, this.lastSpeaker);
      ui.finals.append(line);
    }
    this.refresh();
  },

  refresh() {
    ui.empty.hidden = ui.finals.childElementCount > 0 || ui.partial.textContent !== "";
    ui.captions.scrollTop = ui.captions.scrollHeight;
  },
};

// ---------------------------------------------------------------- live session

class LiveSession {
  constructor() {
    this.socket = null;
    this.opened = false;
    this.stopping = false;
    this.finished = false;
    this.media = null;
    this.audioContext = null;
    this.worklet = null;
    this.closeTimer = null;
    this.abandoned = false;
    this.onEnd = () => {};
  }

  async start() {
    setStatus("Connecting…", "busy");
    const token = await browserToken();
    this.query = liveQuery();
    this.token = token;
    const url = new URL(`${LIVE_PATH}?${this.query}`, location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    // The token rides as a subprotocol; the server answers "pulse-stt".
    this.socket = new WebSocket(url, ["pulse-stt", `bearer.${token}`]);
    this.socket.addEventListener("message", (event) => this.onMessage(event));
    this.socket.addEventListener("close", (event) => this.onClose(event));
    await new Promise((resolve, reject) => {
      this.socket.addEventListener("open", resolve, { once: true });
      this.socket.addEventListener("close", () => reject(new Error("refused")), { once: true });
    }).catch(() => {
      throw new ApiError(0, "refused"); // explained by onClose
    });
    this.opened = true;
    if (this.stopping) {
      this.socket.send(JSON.stringify({ type: "close_stream" })); // Stop came while connecting
      return;
    }
    try {
      await this.startAudio();
    } catch (error) {
      this.abandoned = true; // the error is shown by the caller, not as a lost connection
      this.socket.close(1000);
      throw error;
    }
    setStatus("Listening", "live");
  }

  async startAudio() {
    if (!navigator.mediaDevices?.getUserMedia) {
      throw new ApiError(0, "This browser offers no microphone here (a page needs https:// or localhost for it).");
    }
    try {
      this.media = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: true },
      });
    } catch (error) {
      throw new ApiError(0, `No microphone: ${error.message || error.name}`);
    }
    this.audioContext = new AudioContext();
    const source = this.audioContext.createMediaStreamSource(this.media);
    await this.audioContext.audioWorklet.addModule("/static/audio-worklet.js");
    this.worklet = new AudioWorkletNode(this.audioContext, "pcm16-downsampler", {
      numberOfInputs: 1,
      numberOfOutputs: 0,
      channelCount: 1,
      channelCountMode: "explicit",
      processorOptions: { targetRate: TARGET_RATE, frameMs: FRAME_MS },
    });
    this.worklet.port.onmessage = (event) => {
      const data = event.data;
      if (data.type === "audio") {
        if (this.socket.readyState === WebSocket.OPEN) this.socket.send(data.pcm);
        showLevel(data.peak);
      } else if (data.type === "flushed") {
        this.onFlushed?.();
      }
    };
    source.connect(this.worklet);
  }

  // Stop capturing, send what is left, then close_stream; the server answers with the
  // last finals and is_last, then closes.
  async stop() {
    if (this.stopping) return;
    this.stopping = true;
    setStatus("Finishing…", "busy");
    await this.stopAudio();
    if (this.socket?.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ type: "close_stream" }));
      this.closeTimer = setTimeout(() => {
        showError("The server did not finish the stream in time; the connection was closed.");
        this.socket.close(1000);
      }, CLOSE_WAIT_MS);
    }
  }

  async stopAudio() {
    if (this.worklet) {
      await new Promise((resolve) => {
        this.onFlushed = resolve;
        this.worklet.port.postMessage({ type: "flush" });
        setTimeout(resolve, 500);
      });
      this.worklet.disconnect();
      this.worklet.port.onmessage = null;
      this.worklet = null;
    }
    this.media?.getTracks().forEach((track) => track.stop());
    this.media = null;
    const context = this.audioContext;
    this.audioContext = null;
    await context?.close().catch(() => {});
    showLevel(0);
  }

  onMessage(event) {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message.type === "error") {
      showError(`Server: ${message.message ?? message.error ?? "error"}`);
      return;
    }
    if (message.type !== "transcription") return;
    if (message.is_final) captions.final(message);
    else captions.partial(message);
    if (message.is_last) {
      this.finished = true;
      clearTimeout(this.closeTimer);
      this.socket.close(1000);
    }
  }

  async onClose(event) {
    clearTimeout(this.closeTimer);
    await this.stopAudio().catch(() => {});
    if (!this.opened) {
      showError(await this.refusalReason());
    } else if (!this.finished && !this.abandoned) {
      const reason = event.reason ? `: ${event.reason}` : "";
      showError(`The connection closed unexpectedly (code ${event.code}${reason}).`);
    }
    setStatus(this.finished ? "Done" : "Stopped", this.finished ? "done" : "idle");
    this.onEnd();
  }

  // A browser hides why a handshake was refused; ask the server with the same query.
  async refusalReason() {
    try {
      const response = await fetch(`${LIVE_PATH}?${this.query}`, {
        headers: { Authorization: `Bearer ${this.token}` },
      });
      if (response.status === 426) return "The WebSocket connection failed (a network or proxy problem?).";
      return `The server refused the stream. ${await errorMessage(response)}`;
    } catch {
      return "Could not reach the server.";
    }
  }
}

function showLevel(peak) {
  const percent = Math.min(100, Math.round(Math.sqrt(peak) * 100));
  ui.levelBar.style.width = `${percent}%`;
}

let session = null;

async function startLive() {
  clearError();
  saveSettings();
  ui.start.disabled = true;
  ui.stop.disabled = false;
  const current = new LiveSession();
  session = current;
  current.onEnd = () => {
    if (session === current) session = null;
    ui.start.disabled = false;
    ui.stop.disabled = true;
  };
  try {
    await current.start();
  } catch (error) {
    if (error.message !== "refused") {
      showError(error.message);
      setStatus("Idle", "idle");
      if (current.socket === null) current.onEnd();
    }
  }
}

async function stopLive() {
  ui.stop.disabled = true;
  await session?.stop();
}

// ---------------------------------------------------------------- files (REST)

function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function renderFileResult(file, body) {
  const result = document.createElement("article");
  result.className = "file-transcript";
  const heading = document.createElement("h3");
  heading.textContent = file.name;
  const meta = document.createElement("p");
  meta.className = "meta";
  const duration = body.metadata?.duration;
  meta.textContent = [
    duration != null ? `${Number(duration).toFixed(1)} s` : null,
    body.language ? `language ${body.language}` : null,
    formatBytes(file.size),
  ]
    .filter(Boolean)
    .join(" · ");
  const text = document.createElement("div");
  text.className = "transcript";
  const utterances = Array.isArray(body.utterances) ? body.utterances : [];
  if (utterances.some((u) => Number.isInteger(u.speaker))) {
    // One paragraph per speaker turn (utterances are sentences; merge a speaker's run).
    const turns = [];
    for (const utterance of utterances) {
      const last = turns.at(-1);
      if (last && last.speaker === utterance.speaker) last.text += ` ${utterance.text}`;
      else turns.push({ speaker: utterance.speaker, text: utterance.text });
    }
    for (const turn of turns) {
      const line = document.createElement("p");
      line.append(speakerLabel(turn.speaker));
      const words = document.createElement("span");
      words.className = `words speaker-${turn.speaker % 8}`;
      words.textContent = turn.text;
      line.append(words);
      text.append(line);
    }
  } else {
    const line = document.createElement("p");
    line.textContent = body.transcription || "(no speech found)";
    text.append(line);
  }
  result.append(heading, meta, text);
  return result;
}

async function transcribeFile(file) {
  clearError();
  saveSettings();
  const pending = document.createElement("p");
  pending.className = "pending";
  pending.textContent = `Transcribing ${file.name} (${formatBytes(file.size)})…`;
  ui.fileResult.prepend(pending);
  try {
    const token = await browserToken();
    const params = transcriptParams(new URLSearchParams({ model: ui.fileModel.value }));
    if (ui.diarize.checked) params.set("sentence_timestamps", "true");
    const response = await fetch(`${REST_PATH}?${params}`, {
      method: "POST",
      headers: {
        Authorization: `Bearer ${token}`,
        "Content-Type": file.type || "application/octet-stream",
      },
      body: file,
    });
    if (!response.ok) throw new ApiError(response.status, await errorMessage(response));
    pending.replaceWith(renderFileResult(file, await response.json()));
  } catch (error) {
    pending.remove();
    showError(`${file.name}: ${error.message}`);
  }
}

function setupDropZone() {
  const zone = ui.dropZone;
  const over = (on) => (event) => {
    event.preventDefault();
    zone.classList.toggle("over", on);
  };
  zone.addEventListener("dragenter", over(true));
  zone.addEventListener("dragover", over(true));
  zone.addEventListener("dragleave", over(false));
  zone.addEventListener("drop", (event) => {
    over(false)(event);
    for (const file of event.dataTransfer?.files ?? []) transcribeFile(file);
  });
  // A file dropped next to the zone must not navigate away from the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
  ui.fileInput.addEventListener("change", () => {
    for (const file of ui.fileInput.files) transcribeFile(file);
    ui.fileInput.value = "";
  });
}

// ---------------------------------------------------------------- wiring

restoreSettings();
captions.refresh();
setupDropZone();
ui.start.addEventListener("click", startLive);
ui.stop.addEventListener("click", stopLive);
ui.clear.addEventListener("click", () => captions.clear());
ui.errorClose.addEventListener("click", clearError);
ui.key.addEventListener("change", saveSettings);
for (const control of [ui.language, ui.itn, ui.redactPci, ui.redactPii, ui.diarize, ui.keywords]) {
  control.addEventListener("change", saveSettings);
}
window.addEventListener("pagehide", () => session?.stop());
