"""Stand-ins of the VQA datasets: merve/vqav2-small, HuggingFaceM4/ChartQA, lmms-lab-encoder/DocVQA,
lmms-lab-encoder/textvqa."""

from __future__ import annotations

from datasets import ClassLabel, Features, Image, Value

from .drawing import chart, page, photo
from .schema import STRING, STRINGS, StandIn

VQA_ROWS = [
    ("What color is the bus?", "red", "red", 1),
    ("How many dogs are there?", "2", "blue", 2),
    ("Is the man wearing a hat?", "yes", "green", 1),
    ("What sport is being played?", "tennis", "yellow", 1),
    ("What color is the umbrella?", "blue", "blue", 1),
    ("How many birds are in the sky?", "3", "yellow", 3),
    ("Is it raining?", "no", "green", 1),
    ("What is the boy holding?", "kite", "red", 1),
    ("What color are the flowers?", "yellow", "yellow", 4),
    ("How many people are in the boat?", "4", "red", 4),
    ("Is the traffic light green?", "yes", "green", 1),
    ("What animal is on the grass?", "cat", "blue", 1),
]


def _vqav2_rows(config, split, n, rng):
    return [
        {"multiple_choice_answer": a, "question": q, "image": photo(rng, color, count)}
        for q, a, color, count in (VQA_ROWS * 2)[:n]
    ]


CHARTS = [
    ({"USA": 42, "UK": 35, "Chile": 12}, "What is the value of the tallest bar?", "42"),
    ({"2018": 18.5, "2019": 21.0, "2020": 16.5}, "Which year has the lowest value?", "2020"),
    ({"Cars": 55, "Bikes": 30, "Buses": 15}, "What is the difference between Cars and Bikes?", "25"),
    ({"Q1": 7, "Q2": 9, "Q3": 11}, "Is the value of Q3 greater than Q1?", "Yes"),
    ({"Apple": 38, "Samsung": 27, "Other": 35}, "What percentage does Samsung hold?", "27"),
    ({"Men": 48, "Women": 52}, "Which group is larger?", "Women"),
]


def _chartqa_rows(config, split, n, rng):
    return [
        {"image": chart(values), "query": q, "label": [a], "human_or_machine": i % 2}
        for i, (values, q, a) in enumerate((CHARTS * 3)[:n])
    ]


DOCS = [
    (
        ["MEMORANDUM", "To: R. Smith", "Date: May 4, 1998", "Re: budget"],
        "What is the date of the memo?",
        ["May 4, 1998", "may 4, 1998"],
        ["layout"],
    ),
    (["INVOICE No. 4521", "Total: $1,250.00"], "What is the invoice number?", ["4521"], ["form"]),
    (["Quarterly Report", "Page 3 of 12"], "How many pages does the report have?", ["12"], ["layout"]),
    (["From: Dr. Lee", "To: Board members"], "Who is the sender?", ["Dr. Lee", "Lee"], ["handwritten", "form"]),
    (
        ["Table 2: Sales", "Region  Units", "East  320"],
        "How many units were sold in the East?",
        ["320"],
        ["table/list"],
    ),
]


def _docvqa_rows(config, split, n, rng):
    withheld = split == "test"  # the benchmark's test answers are not published: the stand-in stores null
    rows = []
    for i, (lines, q, answers, types) in enumerate((DOCS * 3)[:n]):
        if config == "DocVQA":
            rows.append(
                {
                    "questionId": str(49153 + i),
                    "question": q,
                    "question_types": None if withheld else types,
                    "image": page(lines),
                    "docId": 14465 + i,
                    "ucsf_document_id": f"txpp0{227 + i}",
                    "ucsf_document_page_no": str(1 + i % 3),
                    "answers": None if withheld else answers,
                    "data_split": split,
                }
            )
        else:
            rows.append(
                {
                    "questionId": str(65718 + i),
                    "question": q,
                    "answers": None if withheld else answers,
                    "answer_type": None if withheld else ["single span"],
                    "image": page(lines, size=(120, 160)),
                    "image_url": f"https://example.org/infographic_{i}.png",
                    "operation/reasoning": None if withheld else ["counting"],
                    "ocr": " ".join(lines),
                    "data_split": split,
                }
            )
    return rows


SIGNS = [
    ("what is the name of the store?", "SPAR", "spar", ["Grocery store", "Building"]),
    ("what number is on the bus?", "42", "42", ["Bus", "Vehicle"]),
    ("what brand is the bottle?", "EVIAN", "evian", ["Bottle"]),
    ("what does the sign say?", "STOP", "stop", ["Traffic sign"]),
    ("what year is on the coin?", "1999", "1999", ["Coin"]),
]


def _textvqa_rows(config, split, n, rng):
    withheld = split == "test"
    rows = []
    for i, (q, text, answer, classes) in enumerate((SIGNS * 3)[:n]):
        # Ten human answers, most of them the canonical one, a few variants (as TextVQA's are).
        humans = [answer] * 7 + [text, f"{answer} sign", "unanswerable"]
        rows.append(
            {
                "image_id": f"{rng.getrandbits(64):016x}",
                "question_id": 34602 + i,
                "question": q,
                "question_tokens": q.rstrip("?").split() + ["?"],
                "image": page([text], size=(80, 40), fmt="JPEG"),
                "image_width": 80,
                "image_height": 40,
                "flickr_original_url": f"https://farm1.staticflickr.com/{i}/o.jpg",
                "flickr_300k_url": f"https://farm1.staticflickr.com/{i}/z.jpg",
                "answers": None if withheld else humans,
                "image_classes": classes,
                "set_name": split if split != "validation" else "val",
                "ocr_tokens": [text.lower()],
            }
        )
    return rows


DOCVQA_FEATURES = Features(
    {
        "questionId": STRING,
        "question": STRING,
        "question_types": STRINGS,
        "image": Image(),
        "docId": Value("int64"),
        "ucsf_document_id": STRING,
        "ucsf_document_page_no": STRING,
        "answers": STRINGS,
        "data_split": STRING,
    }
)
INFOGRAPHICVQA_FEATURES = Features(
    {
        "questionId": STRING,
        "question": STRING,
        "answers": STRINGS,
        "answer_type": STRINGS,
        "image": Image(),
        "image_url": STRING,
        "operation/reasoning": STRINGS,
        "ocr": STRING,
        "data_split": STRING,
    }
)

RECORDS = (
    StandIn(
        hub_id="merve/vqav2-small",
        card="https://huggingface.co/datasets/merve/vqav2-small/blob/main/README.md",
        features={"default": Features({"multiple_choice_answer": STRING, "question": STRING, "image": Image()})},
        splits={"default": {"validation": 12}},  # the card's only split (21,435 rows)
        rows=_vqav2_rows,
        # The card at 4b070c6.
        card_features="""
            - {name: multiple_choice_answer, dtype: string}
            - {name: question, dtype: string}
            - {name: image, dtype: image}
        """,
    ),
    StandIn(
        hub_id="HuggingFaceM4/ChartQA",
        card="https://huggingface.co/datasets/HuggingFaceM4/ChartQA/blob/main/README.md",
        features={
            "default": Features(
                {
                    "image": Image(),
                    "query": STRING,
                    "label": STRINGS,  # a list holding the reference answer
                    "human_or_machine": ClassLabel(names=["human", "machine"]),
                }
            )
        },
        splits={"default": {"train": 6, "val": 2, "test": 4}},  # "val", not "validation"
        rows=_chartqa_rows,
        # The card at b605b6e08b57faf4359aeb2fe6a3ca595f99b6c5.
        card_features="""
            - {name: image, dtype: image}
            - {name: query, dtype: string}
            - {name: label, list: string}
            - name: human_or_machine
              dtype: {class_label: {names: {'0': human, '1': machine}}}
        """,
    ),
    StandIn(
        hub_id="lmms-lab-encoder/DocVQA",
        card="https://huggingface.co/datasets/lmms-lab-encoder/DocVQA/blob/main/README.md",
        features={"DocVQA": DOCVQA_FEATURES, "InfographicVQA": INFOGRAPHICVQA_FEATURES},
        # The card lists validation and test only (its train files are commented out of `configs:`).
        splits={"DocVQA": {"validation": 10, "test": 3}, "InfographicVQA": {"validation": 2, "test": 2}},
        rows=_docvqa_rows,
        files="{config}/{split}-00000-of-00001.parquet",
        # lmms-lab/DocVQA's card at 539088e (now lmms-lab-encoder/DocVQA).
        card_features={
            "DocVQA": """
                - {name: questionId, dtype: string}
                - {name: question, dtype: string}
                - {name: question_types, sequence: string}
                - {name: image, dtype: image}
                - {name: docId, dtype: int64}
                - {name: ucsf_document_id, dtype: string}
                - {name: ucsf_document_page_no, dtype: string}
                - {name: answers, sequence: string}
                - {name: data_split, dtype: string}
            """,
            "InfographicVQA": """
                - {name: questionId, dtype: string}
                - {name: question, dtype: string}
                - {name: answers, sequence: string}
                - {name: answer_type, sequence: string}
                - {name: image, dtype: image}
                - {name: image_url, dtype: string}
                - {name: operation/reasoning, sequence: string}
                - {name: ocr, dtype: string}
                - {name: data_split, dtype: string}
            """,
        },
    ),
    StandIn(
        hub_id="lmms-lab-encoder/textvqa",
        card="https://huggingface.co/datasets/lmms-lab-encoder/textvqa/blob/main/README.md",
        features={
            "default": Features(
                {
                    "image_id": STRING,
                    "question_id": Value("int32"),
                    "question": STRING,
                    "question_tokens": STRINGS,
                    "image": Image(),
                    "image_width": Value("int32"),
                    "image_height": Value("int32"),
                    "flickr_original_url": STRING,
                    "flickr_300k_url": STRING,
                    "answers": STRINGS,  # 10 human answers (withheld in test)
                    "image_classes": STRINGS,
                    "set_name": STRING,
                    "ocr_tokens": STRINGS,
                }
            )
        },
        splits={"default": {"train": 6, "validation": 4, "test": 2}},
        rows=_textvqa_rows,
        # lmms-lab/textvqa's card at 9c0699c (as duplicated, byte for byte, in pppop7/textvqa at 21253e8).
        card_features="""
            - {name: image_id, dtype: string}
            - {name: question_id, dtype: int32}
            - {name: question, dtype: string}
            - {name: question_tokens, sequence: string}
            - {name: image, dtype: image}
            - {name: image_width, dtype: int32}
            - {name: image_height, dtype: int32}
            - {name: flickr_original_url, dtype: string}
            - {name: flickr_300k_url, dtype: string}
            - {name: answers, sequence: string}
            - {name: image_classes, sequence: string}
            - {name: set_name, dtype: string}
            - {name: ocr_tokens, sequence: string}
        """,
    ),
)
