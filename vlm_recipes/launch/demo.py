"""The web demo of a run: the base model and the fine-tuned model answer the same question side by side (Gradio).

    python recipes/demo.py --run outputs/sft_lora-tiny-smolvlm [--port 7860] [--host 127.0.0.1]

Gradio serves the page, streams the answers and stores uploads; the models, the prompt encoding, the streaming and
the upload checks are vlm_recipes.evaluation.side_by_side. What this module adds is the page and the safety defaults:

- the server listens on 127.0.0.1 unless `--host` says otherwise, and never opens a share link (`share=False`);
- every upload, and every image the page shows, is written under one temporary folder made for this server
  (`GRADIO_TEMP_DIR`), removed when the server closes; the upload size limit is enforced by the server (Gradio's
  `max_file_size`, and again before a file is opened);
- a bad upload (not an image, too large, damaged) or a failed generation is a message in the page, never a stack
  trace (the trace goes to the server's log);
- no request leaves the machine: no analytics, system fonts (no Google Fonts), no server-side rendering process.
"""

from __future__ import annotations

import atexit
import html
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..data.video import VIDEO_EXTENSIONS
from ..evaluation.side_by_side import (
    GenerationSettings,
    RunModels,
    UploadError,
    check_video_upload,
    held_out_examples,
    load_run,
    open_upload,
    prompt_row,
    stream_answer,
)
from ..settings import DataArguments

logger = logging.getLogger(__name__)

INSTALL_HINT = "The web demo needs Gradio: pip install -e '.[demo]' (or `make setup`, which installs it)."


@dataclass
class DemoArguments:
    run: str = field(metadata={"help": "A training run's output_dir (adapter, merged or full model)."})
    host: str = field(
        default="127.0.0.1",
        metadata={"help": "Address to listen on. 127.0.0.1: this machine only; 0.0.0.0 opens it to your network."},
    )
    port: int = field(default=7860, metadata={"help": "Port to listen on (0: the first free one from 7860)."})
    base_model: str | None = field(
        default=None, metadata={"help": "The base model to compare with (default: the base the run names)."}
    )
    config: str | None = field(
        default=None,
        metadata={"help": "The YAML the run was trained with, for its held-out examples (default: data_config.json)."},
    )
    device: str = field(default="auto", metadata={"help": "auto (a GPU if there is one), cuda or cpu."})
    dtype: str = field(
        default="float32", metadata={"help": "dtype to load the models in: float32, bfloat16, float16."}
    )
    max_upload_mb: float = field(default=10.0, metadata={"help": "The largest upload accepted, in MB."})
    max_new_tokens: int = field(default=64, metadata={"help": "The page's starting value of max new tokens."})
    held_out_limit: int = field(default=12, metadata={"help": "How many held-out examples the page offers."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Run code from the model's repository."})

    def __post_init__(self):
        if self.max_upload_mb <= 0:
            raise ValueError(f"max_upload_mb must be positive, got {self.max_upload_mb}.")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {self.port}.")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"dtype must be float32, bfloat16 or float16, got {self.dtype!r}.")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)


def _gradio():
    try:
        import gradio
    except ImportError as err:
        raise ImportError(f"{INSTALL_HINT} ({err})") from None
    return gradio


def _figures(results: dict) -> str:
    """The run's held-out headline, e.g. 'held-out accuracy 0.100 -> 0.850 (200 rows)'."""
    key = next((k[: -len("_before")] for k in results if k.endswith("_before") and f"{k[:-7]}_after" in results), None)
    if key is None:
        return ""
    before, after = results[f"{key}_before"], results[f"{key}_after"]
    if not all(isinstance(v, int | float) for v in (before, after)):
        return ""
    rows = results.get("num_eval_samples")
    return f" · held-out {key} {before:.3f} → {after:.3f}" + (f" ({rows} rows)" if rows else "")


def _error(message: str) -> str:
    return f'<div class="demo-error" role="alert">{html.escape(message)}</div>'


def _note(message: str) -> str:
    return f'<div class="demo-note">{html.escape(message)}</div>'


CSS = """
.demo-error { color: #b00020; border: 1px solid #b00020; border-radius: 6px; padding: 6px 10px; }
.demo-note { color: #444; padding: 6px 0; }
"""


class Demo:
    """The page for one run. `build()` makes the Gradio Blocks; `launch()` serves it (localhost, temporary folder);
    `close()` stops it and removes the folder."""

    def __init__(self, args: DemoArguments, models: RunModels):
        self.args, self.models = args, models
        self.video_settings = DataArguments().video_settings  # as training samples videos, by default
        self.examples: list[dict] | None = None
        self.temp_dir: Path | None = None
        self.blocks = None
        self.url: str | None = None
        self._previous_temp_env: str | None = None

    # -- the handlers (plain functions of the page's values: testable without a browser) ----------------------------

    def on_upload(self, path: str | None):
        """Check an upload; returns (media state, image preview, status html)."""
        if not path:
            return None, None, ""
        try:
            if Path(path).suffix.lower() in VIDEO_EXTENSIONS and self.models.takes_video:
                video = check_video_upload(path, self.args.max_upload_bytes, self.video_settings)
                return {"video": video}, None, _note(f"Video {Path(video).name} ready: ask a question.")
            image = open_upload(path, self.args.max_upload_bytes)
        except UploadError as err:
            return None, None, _error(str(err))
        except Exception as err:  # never a trace in the page
            logger.exception("Upload %s failed", path)
            return None, None, _error(f"{Path(path).name} could not be read ({type(err).__name__}).")
        return {"upload": path}, image, _note(f"{Path(path).name}: {image.width}x{image.height} image, ready.")

    def _media(self, state: dict | None):
        """(image, video path) of the current media state, re-checked."""
        if not state:
            raise UploadError("Upload an image (or pick a held-out example) first.")
        if "held_out" in state:
            if self.examples is None or not 0 <= state["held_out"] < len(self.examples):
                raise UploadError("That held-out example is gone (the server restarted): pick it again.")
            example = self.examples[state["held_out"]]
            return example["image"], example["video"]
        if "video" in state:
            return None, check_video_upload(state["video"], self.args.max_upload_bytes, self.video_settings)
        return open_upload(state["upload"], self.args.max_upload_bytes), None

    def on_ask(self, state, question, max_new_tokens, temperature, top_p, seed):
        """Stream both answers: yields (base answer, fine-tuned answer, status html); the base answers first."""
        base_text, tuned_text = "", ""
        try:
            image, video = self._media(state)
            row = prompt_row(question, image, video)
            settings = GenerationSettings(int(max_new_tokens), float(temperature), float(top_p), int(seed))
        except (UploadError, ValueError) as err:
            yield base_text, tuned_text, _error(str(err))
            return
        except Exception as err:  # never a trace in the page
            logger.exception("Reading the input failed")
            yield base_text, tuned_text, _error(f"The input could not be read ({type(err).__name__}).")
            return
        started = time.time()
        try:
            for which in ("base", "tuned"):
                model, context = self.models.model_and_context(which)
                status = _note(f"The {'base' if which == 'base' else 'fine-tuned'} model is answering...")
                for text in stream_answer(model, self.models.processor, row, settings, context, self.video_settings):
                    if which == "base":
                        base_text = text
                    else:
                        tuned_text = text
                    yield base_text, tuned_text, status
        except Exception as err:  # a model that fails on this input: the message, not the trace
            logger.exception("Generation failed")
            yield base_text, tuned_text, _error(f"Generation failed: {type(err).__name__}: {err}")
            return
        yield base_text, tuned_text, _note(f"Answered in {time.time() - started:.1f} s.")

    def on_show_examples(self):
        """The held-out gallery: (gallery items, status html)."""
        try:
            if self.examples is None:
                self.examples = held_out_examples(self.args.run, self.args.config, self.args.held_out_limit)
        except Exception as err:  # a dataset that cannot be loaded here (offline, moved): say so in the page
            logger.exception("Held-out examples")
            return [], _error(f"The held-out examples could not be loaded: {err}")
        items = [(e["image"], e["question"]) for e in self.examples if e["image"] is not None]
        note = f"{len(items)} held-out examples of the run: click one to ask its question about its image."
        return items, _note(note if items else "The run's held-out split has no images to show.")

    def on_pick_example(self, evt):
        """A gallery click: (media state, image preview, question, reference, status html)."""
        shown = [i for i, e in enumerate(self.examples or []) if e["image"] is not None]
        if evt is None or evt.index is None or not 0 <= evt.index < len(shown):
            return None, None, "", "", ""
        i = shown[evt.index]
        example = self.examples[i]
        status = _note(f"Held-out example {evt.index + 1}: press Ask to compare the answers.")
        return {"held_out": i}, example["image"], example["question"], example["reference"] or "", status

    # -- the page ------------------------------------------------------------------------------------------------

    def build(self):
        gr = _gradio()
        m = self.models
        kind = {"adapter": "LoRA adapter", "merged": "merged model", "full": "fully fine-tuned model"}[m.kind]
        accepted = "an image" + (" or a video" if m.takes_video else "")
        with gr.Blocks(title=f"vlm-recipes: {m.run_dir.name}", analytics_enabled=False) as blocks:
            gr.Markdown(
                f"## Base vs fine-tuned: `{m.run_dir.name}`\n"
                f"Base **{m.base_name}** · fine-tuned **{m.run_dir.name}** ({kind}){_figures(m.results)}"
            )
            media = gr.State(None)
            with gr.Row():
                with gr.Column(scale=1):
                    upload = gr.File(label=f"Upload {accepted}", type="filepath", elem_id="upload")
                    preview = gr.Image(label="Image", type="pil", interactive=False, height=220, elem_id="preview")
                    question = gr.Textbox(label="Question", placeholder="What color is the shape?", elem_id="question")
                    with gr.Accordion("Generation settings", open=False):
                        max_new = gr.Slider(1, 512, value=self.args.max_new_tokens, step=1, label="Max new tokens")
                        temperature = gr.Slider(0.0, 2.0, value=0.0, step=0.05, label="Temperature (0: greedy)")
                        top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="Top-p (with temperature > 0)")
                        seed = gr.Number(value=0, precision=0, label="Seed (with temperature > 0)")
                    ask = gr.Button("Ask both models", variant="primary", elem_id="ask")
                    status = gr.HTML(elem_id="status")
                with gr.Column(scale=1):
                    base_answer = gr.Textbox(label=f"Base: {m.base_name}", lines=4, elem_id="base-answer")
                    tuned_answer = gr.Textbox(label=f"Fine-tuned: {m.run_dir.name}", lines=4, elem_id="tuned-answer")
                    reference = gr.Textbox(label="Reference answer (held-out examples)", elem_id="reference")
            with gr.Accordion("Held-out examples of the run", open=True):
                show = gr.Button("Show the held-out examples", elem_id="show-examples")
                gallery = gr.Gallery(
                    label="Held-out examples (click one)",
                    columns=12,
                    height=150,
                    object_fit="contain",
                    allow_preview=False,
                    elem_id="examples",
                )

            upload.upload(self.on_upload, upload, [media, preview, status])
            upload.clear(lambda: (None, None, ""), None, [media, preview, status])
            inputs = [media, question, max_new, temperature, top_p, seed]
            ask.click(self.on_ask, inputs, [base_answer, tuned_answer, status])
            question.submit(self.on_ask, inputs, [base_answer, tuned_answer, status])
            show.click(self.on_show_examples, None, [gallery, status])

            def pick(evt):
                return self.on_pick_example(evt)

            # Gradio passes the click's data to a parameter annotated gr.SelectData; this module's annotations are
            # strings (`from __future__ import annotations`), so the class is set here.
            pick.__annotations__ = {"evt": gr.SelectData}

            gallery.select(pick, None, [media, preview, question, reference, status])
        self.blocks = blocks
        return blocks

    def launch(self, block: bool = True):
        """Serve the page on `args.host:args.port` (localhost by default); uploads go to a temporary folder removed by
        `close()` (also at interpreter exit). `block=False` returns once the server is up (tests)."""
        gr = _gradio()
        self.temp_dir = Path(tempfile.mkdtemp(prefix="vlm-recipes-demo-"))
        atexit.register(shutil.rmtree, self.temp_dir, ignore_errors=True)
        # Gradio stores uploads and served images under GRADIO_TEMP_DIR, read when the page is built and served.
        self._previous_temp_env = os.environ.get("GRADIO_TEMP_DIR")
        os.environ["GRADIO_TEMP_DIR"] = str(self.temp_dir)
        os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
        blocks = self.build()
        theme = gr.themes.Default(
            font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
        )  # system fonts: the default theme would fetch Google Fonts
        _, self.url, _ = blocks.queue(default_concurrency_limit=1).launch(
            server_name=self.args.host,
            server_port=self.args.port or None,
            share=False,
            max_file_size=self.args.max_upload_bytes,
            prevent_thread_lock=True,
            show_error=False,
            quiet=True,
            ssr_mode=False,
            theme=theme,
            css=CSS,
            footer_links=[],
        )
        print(f"Demo of {self.models.run_dir} at {self.url} (uploads in {self.temp_dir}, removed on exit)")
        if block:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, _interrupt)  # `kill` cleans up as Ctrl+C does: the folder is removed
            try:
                blocks.block_thread()
            finally:
                self.close()
        return self.url

    def close(self) -> None:
        if self.blocks is not None:
            self.blocks.close(verbose=False)
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
        if self._previous_temp_env is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = self._previous_temp_env


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run_demo(args: DemoArguments, block: bool = True) -> Demo:
    """Load the run's models and serve the page (recipes/demo.py)."""
    _gradio()  # a missing install is named before the models load
    models = load_run(args.run, args.base_model, args.device, args.dtype, args.trust_remote_code)
    demo = Demo(args, models)
    demo.launch(block=block)
    return demo
