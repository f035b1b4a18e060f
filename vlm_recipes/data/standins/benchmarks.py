"""Stand-ins of the benchmarks' datasets (vlm_recipes/evaluation/benchmarks): lmms-lab-encoder/MMMU,
lmms-lab-encoder/MMBench, Lin-Chen/MMStar, lmms-lab-encoder/ai2d, lmms-lab-encoder/ScienceQA, AI4Math/MathVista,
echo840/OCRBench. ChartQA, DocVQA and TextVQA are in vqa.py.

The images are real where a package ships them: scikit-learn's two photos (a Chinese temple, a flower) and its
handwritten 8x8 digits (strings of them for OCRBench's digit and handwriting questions, options made of them for
MMMU's image options), plus drawn charts, pages and figures whose content the questions ask about. The questions are
synthetic; each row's answer is right for its image, so a model that reads the images could score.
"""

from __future__ import annotations

from functools import cache

from datasets import Features, Image, Value
from PIL import Image as PILImage

from .drawing import chart, encoded, figure, page
from .schema import STRING, STRINGS, StandIn

INT64, INT8, FLOAT64 = Value("int64"), Value("int8"), Value("float64")


@cache
def _photos() -> dict[str, PILImage.Image]:
    """scikit-learn's sample photos (real JPEGs shipped in its wheel), scaled down: {'temple': ..., 'flower': ...}."""
    from sklearn.datasets import load_sample_images

    bunch = load_sample_images()
    photos = {}
    for name, array in zip(bunch.filenames, bunch.images):
        key = "temple" if "china" in name else "flower"
        image = PILImage.fromarray(array)
        image.thumbnail((128, 128))
        photos[key] = image
    return photos


def real_photo(name: str, fmt: str = "JPEG") -> dict:
    return encoded(_photos()[name], fmt)


@cache
def _digit_images() -> dict[int, PILImage.Image]:
    """One real handwritten digit per class (scikit-learn's digits: 8x8, 17 grey levels), as 24x24 greyscale."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    first = {}
    for array, label in zip(digits.images, digits.target):
        if int(label) not in first:
            pixels = (array * (255 / 16)).clip(0, 255).astype("uint8")
            first[int(label)] = PILImage.fromarray(255 - pixels, mode="L").resize((24, 24), PILImage.NEAREST)
    return first


def digit_string(text: str, fmt: str = "PNG") -> dict:
    """A strip of real handwritten digits spelling `text` (e.g. '3051')."""
    images = _digit_images()
    strip = PILImage.new("L", (24 * len(text) + 8, 32), 255)
    for i, char in enumerate(text):
        strip.paste(images[int(char)], (4 + 24 * i, 4))
    return encoded(strip.convert("RGB"), fmt)


# -- MMMU (lmms-lab-encoder/MMMU: MMMU/MMMU's 30 subject configurations concatenated) ---------------------------------

MMMU_ROWS = [
    # (subject, question, options or None (open), answer, images)
    ("Art", "<image 1> What is shown in this photograph?", ["A flower", "A temple", "A car", "A river"], "A",
     ["flower"]),
    ("Architecture_and_Engineering", "Which of the two photographs, <image 1> or <image 2>, shows a building?",
     ["The first one", "The second one"], "B", ["flower", "temple"]),
    ("Math", "Which image shows the handwritten digit 3?", ["<image 1>", "<image 2>", "<image 3>"], "C",
     ["digit:1", "digit:7", "digit:3"]),
    ("Economics", "<image 1> What is the value of the tallest bar?", None, "42", ["chart:tallest"]),
    ("Math", "<image 1> What is the sum of the two handwritten digits?", None, "12", ["digit:57"]),
    ("Accounting", "<image 1> Which year has the lowest value?", ["2018", "2019", "2020", "2021"], "C",
     ["chart:years"]),
]  # fmt: skip


def _mmmu_image(spec: str) -> dict:
    if spec.startswith("digit:"):
        return digit_string(spec.split(":")[1])
    if spec == "chart:tallest":
        return chart({"USA": 42, "UK": 35, "Chile": 12})
    if spec == "chart:years":
        return chart({"2018": 18.5, "2019": 21.0, "2020": 16.5, "2021": 19.0})
    return real_photo(spec, "PNG")


def _mmmu_rows(config, split, n, rng):
    rows = []
    for i, (subject, question, options, answer, images) in enumerate((MMMU_ROWS * 2)[:n]):
        row = {
            "id": f"{split}_{subject}_{i + 1}",
            "question": question,
            "options": str(options or []),  # the text of a Python list, as MMMU stores it
            "explanation": "",
            **{f"image_{k}": _mmmu_image(images[k - 1]) if k <= len(images) else None for k in range(1, 8)},
            "img_type": "['Photographs']" if "digit" not in images[0] else "['Handwriting']",
            "answer": None if split == "test" else answer,  # the test answers are withheld
            "topic_difficulty": ["Easy", "Medium", "Hard"][i % 3],
            "question_type": "multiple-choice" if options else "open",
            "subfield": subject.replace("_", " "),
        }
        rows.append(row)
    return rows


MMMU_FEATURES = Features(
    {
        "id": STRING,
        "question": STRING,
        "options": STRING,
        "explanation": STRING,
        **{f"image_{k}": Image() for k in range(1, 8)},
        "img_type": STRING,
        "answer": STRING,
        "topic_difficulty": STRING,
        "question_type": STRING,
        "subfield": STRING,
    }
)


# -- MMBench (lmms-lab-encoder/MMBench, en): circular copies stored with index + k * 1,000,000 ------------------------

MMBENCH_ROWS = [
    # (question, hint, options, answer letter, category, L2-category, image)
    ("What is the main object in the image?", None, ["A flower", "A temple", "A dog", "A bicycle"], "A",
     "image_topic", "coarse_perception", "flower"),
    ("Which kind of place is shown?", "The photo was taken in a city in China.",
     ["A beach", "A forest", "A temple", "A kitchen"], "C", "image_scene", "coarse_perception", "temple"),
    ("Which number is written in the image?", None, ["3051", "3015"], "A", "ocr", "fine-grained_perception (instance)",
     "digits:3051"),
    ("Which bar is the tallest?", None, ["USA", "UK", "Chile"], "A", "attribute_comparison",
     "fine-grained_perception (cross-instance)", "chart"),
]  # fmt: skip


def _mmbench_image(spec: str) -> dict:
    if spec.startswith("digits:"):
        return digit_string(spec.split(":")[1], "JPEG")
    if spec == "chart":
        return chart({"USA": 42, "UK": 35, "Chile": 12})
    return real_photo(spec)


def _mmbench_rows(config, split, n, rng):
    """Questions each stored once per rotation of its options (the circular copies VLMEvalKit made, index + k * 1e6),
    until `n` rows: the real dev split's 4,329 rows are its questions times their rotations."""
    rows = []
    for i, (question, hint, options, answer, category, l2, image) in enumerate(MMBENCH_ROWS * 3):
        if len(rows) >= n:
            break
        gold = "ABCD".index(answer)
        for k in range(len(options)):
            shown = options[k:] + options[:k]
            rows.append(
                {
                    "index": i + k * 1_000_000,
                    "question": question,
                    "hint": hint,
                    "answer": None if split == "test" else "ABCD"[(gold - k) % len(options)],
                    **{letter: shown[j] if j < len(shown) else None for j, letter in enumerate("ABCD")},
                    "category": category,
                    "image": _mmbench_image(image),
                    "source": "MMBench",
                    "L2-category": l2,
                    "comment": None,
                    "split": split,
                }
            )
    if len(rows) != n:
        raise ValueError(f"MMBench stand-in: {n} rows do not end on a whole question ({len(rows)}).")
    return rows


MMBENCH_FEATURES = Features(
    {
        "index": INT64,
        "question": STRING,
        "hint": STRING,
        "answer": STRING,
        "A": STRING,
        "B": STRING,
        "C": STRING,
        "D": STRING,
        "category": STRING,
        "image": Image(),
        "source": STRING,
        "L2-category": STRING,
        "comment": STRING,
        "split": STRING,
    }
)


# -- MMStar (Lin-Chen/MMStar): options written into the question ------------------------------------------------------

MMSTAR_ROWS = [
    ("What is the main object in the image?", ["A building", "A flower", "A boat", "A cat"], "B",
     "coarse perception", "image scene and topic", "flower"),
    ("How many bars does the chart have?", ["2", "3", "4", "5"], "B", "fine-grained perception", "object counting",
     "chart"),
    ("What kind of structure is shown?", ["A bridge", "A tower block", "A temple", "A tent"], "C",
     "coarse perception", "image scene and topic", "temple"),
    # A row whose options cannot be parsed (not "A: ..., B: ..."): the benchmark scores it as wrong and goes on.
    ("Which building is shown?", "(A) A temple (B) A tent", "A", "coarse perception", "image scene and topic",
     "temple"),
]  # fmt: skip


def _mmstar_rows(config, split, n, rng):
    rows = []
    for i, (question, options, answer, category, l2, image) in enumerate((MMSTAR_ROWS * 3)[:n]):
        listed = options if isinstance(options, str) else ", ".join(f"{'ABCD'[j]}: {o}" for j, o in enumerate(options))
        rows.append(
            {
                "index": i,
                "question": f"{question}\nOptions: {listed}",
                "image": _mmbench_image(image),
                "answer": answer,
                "category": category,
                "l2_category": l2,
                "meta_info": {"source": "MMBench", "split": "val", "image_path": f"images/{i}.jpg"},
            }
        )
    return rows


# -- AI2D (lmms-lab-encoder/ai2d) and ScienceQA (lmms-lab-encoder/ScienceQA) ------------------------------------------

DIAGRAMS = [
    ("Which shape has the most corners?", ["triangle", "square", "pentagon", "hexagon"], 3, 6),
    ("How many corners does the shape have?", ["3", "4", "5", "6"], 0, 3),
    ("What does the picture show?", ["a flower", "a river", "a mountain", "a cloud"], 0, None),
]


def _ai2d_rows(config, split, n, rng):
    rows = []
    for question, options, answer, points in (DIAGRAMS * 3)[:n]:
        image = figure(points, rng) if points else real_photo("flower", "PNG")
        rows.append({"question": question, "options": options, "answer": str(answer), "image": image})
    return rows


SCIENCE = [
    # (question, choices, answer index, hint, subject, image (None: a text-only row, ScienceQA-FULL only))
    ("Which of these is a plant?", ["flower", "temple"], 0, "Look at the picture.", "natural science", "flower"),
    ("Which material is the roof of this building most likely made of?", ["tiles", "paper", "ice"], 0, "",
     "social science", "temple"),
    ("Which number is written?", ["57", "75"], 0, "The digits were written by hand.", "language science", "digits"),
    ("Which word is a noun?", ["run", "table"], 1, "", "language science", None),
]  # fmt: skip


def _science_rows(config, split, n, rng):
    keep = [row for row in SCIENCE if row[-1] is not None or config == "ScienceQA-FULL"]
    rows = []
    for question, choices, answer, hint, subject, image in (keep * 3)[:n]:
        picture = None
        if image == "digits":
            picture = digit_string("57")
        elif image is not None:
            picture = real_photo(image, "PNG")
        rows.append(
            {
                "image": picture,
                "question": question,
                "choices": choices,
                "answer": answer,
                "hint": hint,
                "task": "closed choice",
                "grade": "grade4",
                "subject": subject,
                "topic": "biology" if subject == "natural science" else "grammar",
                "category": "Identify plants and animals",
                "skill": "Identify plants and animals",
                "lecture": "",
                "solution": "",
            }
        )
    return rows


SCIENCE_CARD = """
            - {name: image, dtype: image}
            - {name: question, dtype: string}
            - {name: choices, sequence: string}
            - {name: answer, dtype: int8}
            - {name: hint, dtype: string}
            - {name: task, dtype: string}
            - {name: grade, dtype: string}
            - {name: subject, dtype: string}
            - {name: topic, dtype: string}
            - {name: category, dtype: string}
            - {name: skill, dtype: string}
            - {name: lecture, dtype: string}
            - {name: solution, dtype: string}
        """
SCIENCE_FEATURES = Features(
    {
        "image": Image(),
        "question": STRING,
        "choices": STRINGS,
        "answer": INT8,
        "hint": STRING,
        "task": STRING,
        "grade": STRING,
        "subject": STRING,
        "topic": STRING,
        "category": STRING,
        "skill": STRING,
        "lecture": STRING,
        "solution": STRING,
    }
)


# -- MathVista (AI4Math/MathVista) ------------------------------------------------------------------------------------

HINTS = {
    "integer": "Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, "
    "at the end.",
    "float": "Please answer the question requiring a floating-point number with one decimal place and provide the "
    "final value, e.g., 1.2, 1.3, 1.4, at the end.",
    "list": "Please answer the question requiring a Python list as an answer and provide the final list, e.g., "
    "[1, 2, 3], [1.2, 1.3, 1.4], at the end.",
    "choice": "Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.",
}
MATHVISTA_ROWS = [
    # (question, choices or None, answer, answer_type, precision, image)
    ("What is the value of the tallest bar?", None, "42", "integer", None, "chart:tallest"),
    ("What is the average of the three bars?", None, "18.7", "float", 1.0, "chart:years3"),
    ("Which year has the lowest value?", ["2018", "2019", "2020"], "2020", "text", None, "chart:years3"),
    ("Which two years have the highest values?", None, "[2018, 2019]", "list", None, "chart:years3"),
    ("How many corners does the shape have?", ["3", "4", "5", "6"], "5", "integer", None, "figure:5"),
    # A row whose answer is not among its choices: the benchmark scores it as wrong and goes on.
    ("Which year has the highest value?", ["2018", "2019", "2020"], "2021", "text", None, "chart:years3"),
]  # fmt: skip


def _mathvista_image(spec: str, rng) -> dict:
    if spec == "chart:tallest":
        return chart({"USA": 42, "UK": 35, "Chile": 12})
    if spec == "chart:years3":
        return chart({"2018": 18.5, "2019": 21.0, "2020": 16.5})
    return figure(int(spec.split(":")[1]), rng)


def _mathvista_rows(config, split, n, rng):
    rows = []
    for i, (question, choices, answer, answer_type, precision, image) in enumerate((MATHVISTA_ROWS * 3)[:n]):
        if choices:
            listed = "\n".join(f"({'ABCDEFGH'[j]}) {c}" for j, c in enumerate(choices))
            query = f"Hint: {HINTS['choice']}\nQuestion: {question}\nChoices:\n{listed}"
        else:
            query = f"Hint: {HINTS[answer_type]}\nQuestion: {question}"
        rows.append(
            {
                "pid": str(i + 1),
                "question": question,
                "image": f"images/{i + 1}.jpg",
                "decoded_image": _mathvista_image(image, rng),
                "choices": choices,
                "unit": None,
                "precision": precision,
                "answer": None if split == "test" else answer,
                "question_type": "multi_choice" if choices else "free_form",
                "answer_type": answer_type,
                "metadata": {
                    "category": "math-targeted-vqa" if image.startswith("figure") else "general-vqa",
                    "context": "bar chart" if image.startswith("chart") else "geometry diagram",
                    "grade": "high school",
                    "img_height": 90,
                    "img_width": 120,
                    "language": "english",
                    "skills": ["statistical reasoning"],
                    "source": "ChartQA" if image.startswith("chart") else "Geometry3K",
                    "split": split,
                    "task": "figure question answering",
                },
                "query": query,
            }
        )
    return rows


MATHVISTA_FEATURES = Features(
    {
        "pid": STRING,
        "question": STRING,
        "image": STRING,
        "decoded_image": Image(),
        "choices": STRINGS,
        "unit": STRING,
        "precision": FLOAT64,
        "answer": STRING,
        "question_type": STRING,
        "answer_type": STRING,
        "metadata": {
            "category": STRING,
            "context": STRING,
            "grade": STRING,
            "img_height": INT64,
            "img_width": INT64,
            "language": STRING,
            "skills": STRINGS,
            "source": STRING,
            "split": STRING,
            "task": STRING,
        },
        "query": STRING,
    }
)


# -- OCRBench (echo840/OCRBench) --------------------------------------------------------------------------------------

OCR_ROWS = [
    # (source dataset, question, question type, answers, image)
    ("IIIT5K", "what is written in the image?", "Regular Text Recognition", ["SALE"], "text:SALE"),
    ("IIIT5K", "what is the number in the image?", "Digit String Recognition", ["3051"], "digits:3051"),
    ("ESTVQA", "what is written on the sign?", "Scene Text-centric VQA", ["OPEN"], "sign:OPEN"),
    ("HME100k", "Please write out the expression of the formula in the image using LaTeX format.",
     "Handwritten Mathematical Expression Recognition", ["5 + 7"], "digits:57"),
    ("docVQA", "What is the total amount?", "Doc-oriented VQA", ["$1,250.00", "1,250.00"],
     "page:INVOICE No. 4521|Total: $1,250.00"),
    ("SROIE", "what is the name of the company that issued this receipt? Answer this question using the text in the "
     "image directly.", "Key Information Extraction", ["ACME LTD"], "page:ACME LTD|RECEIPT|TOTAL 9.90"),
]  # fmt: skip


def _ocr_image(spec: str) -> dict:
    kind, _, text = spec.partition(":")
    if kind == "digits":
        return digit_string(text)
    if kind == "sign":  # a sign on the real temple photo
        image = _photos()["temple"].copy()
        from PIL import ImageDraw

        draw = ImageDraw.Draw(image)
        draw.rectangle([8, 8, 60, 26], fill="white")
        draw.text((12, 10), text, fill="black")
        return encoded(image, "JPEG")
    if kind == "text":
        return page([text], size=(60, 24))
    return page(text.split("|"), size=(120, 60))


def _ocrbench_rows(config, split, n, rng):
    return [
        {"dataset": source, "question": q, "question_type": kind, "answer": answers, "image": _ocr_image(image)}
        for source, q, kind, answers, image in (OCR_ROWS * 2)[:n]
    ]


RECORDS = (
    StandIn(
        hub_id="lmms-lab-encoder/MMMU",
        card="https://huggingface.co/datasets/lmms-lab-encoder/MMMU/blob/main/README.md",
        features={"default": MMMU_FEATURES},
        splits={"default": {"dev": 2, "validation": 6, "test": 2}},
        rows=_mmmu_rows,
        # lmms-lab/MMMU's card at 5f93af86377c18552077e1ffdb193d9f8d2b1343 (now lmms-lab-encoder/MMMU).
        card_features="""
            - {name: id, dtype: string}
            - {name: question, dtype: string}
            - {name: options, dtype: string}
            - {name: explanation, dtype: string}
            - {name: image_1, dtype: image}
            - {name: image_2, dtype: image}
            - {name: image_3, dtype: image}
            - {name: image_4, dtype: image}
            - {name: image_5, dtype: image}
            - {name: image_6, dtype: image}
            - {name: image_7, dtype: image}
            - {name: img_type, dtype: string}
            - {name: answer, dtype: string}
            - {name: topic_difficulty, dtype: string}
            - {name: question_type, dtype: string}
            - {name: subfield, dtype: string}
        """,
    ),
    StandIn(
        hub_id="lmms-lab-encoder/MMBench",
        card="https://huggingface.co/datasets/lmms-lab-encoder/MMBench/blob/main/README.md (configuration en; the "
        "card's cc and cn configurations are not reproduced)",
        # Not compared with a copied card text: the `en` section of the card on main (56ba1af) could not be read for
        # this check; at ac155b9 `en`'s index was a string (int64 in cn and cc), and en was re-uploaded at 2678eaa.
        # The columns and their order are those of `cn` on main (56ba1af: index, question, hint, answer, A-D,
        # category, image, source, L2-category, comment, split), and every column lmms-eval's mmbench en task reads
        # (lmms_eval/tasks/mmbench/en_utils.py at 75571cf) is here (tests/test_standins.py checks both).
        features={"en": MMBENCH_FEATURES},
        # Rows: 4 questions stored with 4, 4, 2 and 3 rotations; 1 question of 4 in test (answers withheld).
        splits={"en": {"dev": 13, "test": 4}},
        rows=_mmbench_rows,
        files="{config}/{split}-00000-of-00001.parquet",
    ),
    StandIn(
        hub_id="Lin-Chen/MMStar",
        card="https://huggingface.co/datasets/Lin-Chen/MMStar/blob/main/README.md",
        features={
            "val": Features(
                {
                    "index": INT64,
                    "question": STRING,
                    "image": Image(),
                    "answer": STRING,
                    "category": STRING,
                    "l2_category": STRING,
                    "meta_info": {"source": STRING, "split": STRING, "image_path": STRING},
                }
            )
        },
        splits={"val": {"val": 4}},
        rows=_mmstar_rows,
        files="mmstar.parquet",  # one file at the repository root
        # The card's dataset_info as committed with mmstar.parquet (a9beb0910fc57358ee4a25d2f0dbad93a155fad0); the
        # configuration is `val` on main (the Parquet converter's folder is val/), with its one split `val`, which
        # lmms-eval's mmstar task reads (lmms_eval/tasks/mmstar: no dataset_name, test_split val).
        card_features={
            "val": """
            - {name: index, dtype: int64}
            - {name: question, dtype: string}
            - {name: image, dtype: image}
            - {name: answer, dtype: string}
            - {name: category, dtype: string}
            - {name: l2_category, dtype: string}
            - name: meta_info
              struct:
                - {name: source, dtype: string}
                - {name: split, dtype: string}
                - {name: image_path, dtype: string}
        """
        },
    ),
    StandIn(
        hub_id="lmms-lab-encoder/ai2d",
        card="https://huggingface.co/datasets/lmms-lab-encoder/ai2d/blob/main/README.md",
        features={"default": Features({"question": STRING, "options": STRINGS, "answer": STRING, "image": Image()})},
        splits={"default": {"test": 3}},
        rows=_ai2d_rows,
        # lmms-lab/ai2d's card at c83a9b9 (its dataset_info unchanged since 7f7fbf8edcc628605d9e48da01c50b3cc5b3d02d).
        card_features="""
            - {name: question, dtype: string}
            - {name: options, sequence: string}
            - {name: answer, dtype: string}
            - {name: image, dtype: image}
        """,
    ),
    StandIn(
        hub_id="lmms-lab-encoder/ScienceQA",
        card="https://huggingface.co/datasets/lmms-lab-encoder/ScienceQA/blob/main/README.md",
        features={"ScienceQA-FULL": SCIENCE_FEATURES, "ScienceQA-IMG": SCIENCE_FEATURES},
        splits={"ScienceQA-FULL": {"validation": 4, "test": 4}, "ScienceQA-IMG": {"validation": 3, "test": 3}},
        rows=_science_rows,
        files="{config}/{split}-00000-of-00001.parquet",
        # lmms-lab/ScienceQA's card on main (its two configurations share these features; splits validation, test).
        card_features={"ScienceQA-FULL": SCIENCE_CARD, "ScienceQA-IMG": SCIENCE_CARD},
    ),
    StandIn(
        hub_id="AI4Math/MathVista",
        card="https://huggingface.co/datasets/AI4Math/MathVista/blob/main/README.md",
        features={"default": MATHVISTA_FEATURES},
        splits={"default": {"testmini": 6, "test": 2}},
        rows=_mathvista_rows,
        # The card at d32e834bdd9442cf2a0f72e3b2b7a74151c2a2d1.
        card_features="""
            - {name: pid, dtype: string}
            - {name: question, dtype: string}
            - {name: image, dtype: string}
            - {name: decoded_image, dtype: image}
            - {name: choices, sequence: string}
            - {name: unit, dtype: string}
            - {name: precision, dtype: float64}
            - {name: answer, dtype: string}
            - {name: question_type, dtype: string}
            - {name: answer_type, dtype: string}
            - name: metadata
              struct:
                - {name: category, dtype: string}
                - {name: context, dtype: string}
                - {name: grade, dtype: string}
                - {name: img_height, dtype: int64}
                - {name: img_width, dtype: int64}
                - {name: language, dtype: string}
                - {name: skills, sequence: string}
                - {name: source, dtype: string}
                - {name: split, dtype: string}
                - {name: task, dtype: string}
            - {name: query, dtype: string}
        """,
    ),
    StandIn(
        hub_id="echo840/OCRBench",
        card="https://huggingface.co/datasets/echo840/OCRBench/blob/main/README.md",
        features={
            "default": Features(
                {"dataset": STRING, "question": STRING, "question_type": STRING, "answer": STRINGS, "image": Image()}
            )
        },
        splits={"default": {"test": 6}},
        rows=_ocrbench_rows,
        # The card at 276bd0b72b4eb57bc78d80df6d182cb21d7e926d.
        card_features="""
            - {name: dataset, dtype: string}
            - {name: question, dtype: string}
            - {name: question_type, dtype: string}
            - {name: answer, sequence: string}
            - {name: image, dtype: image}
        """,
    ),
)
