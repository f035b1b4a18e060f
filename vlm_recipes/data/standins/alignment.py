"""Stand-ins of the preference and RL datasets: HuggingFaceH4/rlaif-v_formatted (free-form chosen/rejected
answers) and lmms-lab/multimodal-open-r1-8k-verified (reasoning-trace solutions)."""

from __future__ import annotations

from datasets import Features, Image, List

from .drawing import COLORS, figure, photo
from .schema import MESSAGES, STRING, StandIn

PREFERENCES = [
    (
        "Describe the image in detail.",
        "The image shows a grassy field under a clear blue sky. A single red ball lies in the middle of the field, "
        "casting a small shadow on the grass. There are no people or animals visible, and the scene looks calm and "
        "sunny, like an afternoon in a park.",
        "The image shows a crowded beach with several people playing volleyball near the water. A red umbrella stands "
        "in the sand and a dog is running towards the waves, while boats sail in the distance.",
    ),
    (
        "What objects can you see in this picture?",
        "I can see two blue round objects, probably balls, resting on green grass. Above them is a pale blue sky "
        "without clouds. Nothing else, such as buildings or trees, appears in the picture.",
        "I can see two blue cars parked next to a tall building, a tree with yellow leaves and a man walking a dog "
        "on the sidewalk. A traffic light is visible on the right side.",
    ),
    (
        "Is there anything unusual in this image?",
        "Nothing looks unusual: it is a simple outdoor scene with a green object on the grass and a blue sky above "
        "it. The lighting is even and the colours are natural, with no visible people or text.",
        "Yes, there is a giraffe standing on the roof of a car, which is very unusual. The car is parked in a "
        "parking lot surrounded by snow, and a person is taking a photo of it.",
    ),
]


def _rlaif_rows(config, split, n, rng):
    rows = []
    for i, (question, chosen, rejected) in enumerate((PREFERENCES * 4)[:n]):
        color = list(COLORS)[i % len(COLORS)]
        rows.append(
            {
                "chosen": [{"content": [{"text": chosen, "type": "text"}], "role": "assistant"}],
                "rejected": [{"content": [{"text": rejected, "type": "text"}], "role": "assistant"}],
                # Some source photos are greyscale JPEGs (mode L), as in the card's example row.
                "images": [photo(rng, color, 1 + i % 3, mode="L" if i % 3 == 2 else "RGB")],
                "prompt": [
                    {
                        "content": [{"text": None, "type": "image"}, {"text": question, "type": "text"}],
                        "role": "user",
                    }
                ],
            }
        )
    return rows


# (problem, solution trace, original answer, number of vertices of the figure). The traces have the dataset's form:
# reasoning inside <think>, a blank line, the final answer inside <answer>; numbers other than the answer appear in
# the reasoning, and multiple-choice answers are option letters.
R1_PROBLEMS = [
    (
        "Based on the image, what is the measure of angle C in triangle ABC?\n"
        "Choices:\nA: 45°\nB: 60°\nC: 90°\nD: 30°",
        "<think>The figure shows triangle ABC with a right angle at A and angle B = 45°. The angles of a triangle "
        "add up to 180°, so angle C = 180° - 90° - 45° = 45°. Among the choices, 45° is option A, so the correct "
        "answer is A.</think>\n\n<answer>A</answer>",
        "Answer: A",
        3,
    ),
    (
        "How many apples are left in the basket after Tom takes half of them?",
        "<think>I count 12 apples in the basket. Tom takes half of them: 12 / 2 = 6, so 6 apples are left."
        "</think>\n\n<answer>6</answer>",
        "6",
        4,
    ),
    (
        "What fraction of the square is shaded?",
        "<think>The square is divided into 4 equal parts and 3 of them are shaded, so the shaded fraction is "
        "3 out of 4.</think>\n\n<answer>\\frac{3}{4}</answer>",
        "3/4",
        4,
    ),
    (
        "In the right triangle shown, the legs are 2 and 2\\sqrt{2}. What is the length of the hypotenuse?",
        "<think>By the Pythagorean theorem the hypotenuse is \\sqrt{2^2 + (2\\sqrt{2})^2} = \\sqrt{4 + 8} = "
        "\\sqrt{12} = 2\\sqrt{3}.</think>\n\n<answer>2\\sqrt{3}</answer>",
        "2\\sqrt{3}",
        3,
    ),
    (
        "Which shape in the image has the largest area?\nChoices:\nA: the circle\nB: the square\nC: the triangle",
        "<think>The square has side 4, area 16; the circle has radius 2, area about 12.6; the triangle has base 4 "
        "and height 4, area 8. The square is the largest, which is option B.</think>\n\n<answer>B</answer>",
        "Answer: B",
        4,
    ),
    (
        "What is the sum of the two tallest bars in the chart?",
        "<think>The bars read 42, 35 and 12. The two tallest are 42 and 35, and 42 + 35 = 77.</think>\n\n"
        "<answer>77</answer>",
        "77",
        4,
    ),
    (
        "Find x in the figure if the two marked angles are supplementary and one of them is 145°.",
        "<think>Supplementary angles add up to 180°, so x = 180° - 145° = 35°.</think>\n\n<answer>35°</answer>",
        "35",
        5,
    ),
    (
        "What color is the largest shape in the image?",
        "<think>There are three shapes: a small blue triangle, a medium green square and a large red circle. The "
        "largest one is the circle, which is red.</think>\n\n<answer>red</answer>",
        "red",
        6,
    ),
    (
        "What is the length of side BC if AB = 6 and AC = 4.5 in the right triangle with the right angle at C?",
        "<think>AB is the hypotenuse, so BC = \\sqrt{6^2 - 4.5^2} = \\sqrt{36 - 20.25} = \\sqrt{15.75} \\approx "
        "3.97.</think>\n\n<answer>3.97</answer>",
        "3.97",
        3,
    ),
    (
        "Which point lies on the circle?\nChoices:\nA: P\nB: Q\nC: R\nD: S",
        "<think>Points P and Q are inside the circle, S is outside, and R lies exactly on it. So the correct answer "
        "is C.</think>\n\n<answer>C</answer>",
        "Answer: C",
        5,
    ),
]


def _open_r1_rows(config, split, n, rng):
    return [
        {
            "image": figure(vertices, rng),
            "problem": problem,
            "solution": solution,
            "original_question": f"Question: {problem}",
            "original_answer": original,
        }
        for problem, solution, original, vertices in (R1_PROBLEMS * 2)[:n]
    ]


RECORDS = (
    StandIn(
        hub_id="HuggingFaceH4/rlaif-v_formatted",
        card="https://huggingface.co/datasets/HuggingFaceH4/rlaif-v_formatted/blob/main/README.md",
        features={
            "default": Features(
                {"chosen": MESSAGES, "rejected": MESSAGES, "images": List(Image()), "prompt": MESSAGES}
            )
        },
        splits={"default": {"train": 6, "test": 3}},
        rows=_rlaif_rows,
        # The card at 37f63921ed9cce65f0f841be196ae19967252765 (data of 329bef5).
        card_features="""
            - name: chosen
              list:
                - name: content
                  list: [{name: text, dtype: string}, {name: type, dtype: string}]
                - {name: role, dtype: string}
            - name: rejected
              list:
                - name: content
                  list: [{name: text, dtype: string}, {name: type, dtype: string}]
                - {name: role, dtype: string}
            - {name: images, sequence: image}
            - name: prompt
              list:
                - name: content
                  list: [{name: text, dtype: string}, {name: type, dtype: string}]
                - {name: role, dtype: string}
        """,
    ),
    StandIn(
        hub_id="lmms-lab/multimodal-open-r1-8k-verified",
        card="https://huggingface.co/datasets/lmms-lab/multimodal-open-r1-8k-verified/blob/main/README.md (files: "
        "data/train-*)",
        features={
            "default": Features(
                {
                    "image": Image(),
                    "problem": STRING,
                    "solution": STRING,  # a whole reasoning trace: <think>...</think>\n\n<answer>...</answer>
                    "original_question": STRING,
                    "original_answer": STRING,
                }
            )
        },
        splits={"default": {"train": 10}},  # one split of 7,689 rows
        rows=_open_r1_rows,
        # The card at e3c8f3adf1dfc2b674cf736181ae6b9f9839a3ce (data/train-00000-of-00001.parquet, 7,689 rows).
        card_features="""
            - {name: image, dtype: image}
            - {name: problem, dtype: string}
            - {name: solution, dtype: string}
            - {name: original_question, dtype: string}
            - {name: original_answer, dtype: string}
        """,
    ),
)
