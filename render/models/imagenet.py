"""The 1000 ImageNet (ILSVRC-2012) classes, so that jobs can name a BigGAN class in words.

`imagenet_classes.tsv` is our own copy of the public class list: index, WordNet
id and the WordNet lemmas ("tench, Tinca tinca"), in the standard class order
that BigGAN's one-hot vectors use. It ships with the package; nothing is
fetched at run time.

A name matches a class when it equals one of the class's lemmas, ignoring case
and surrounding spaces ("golden retriever", "Tinca tinca"). Some lemmas name
two classes ("crane" the bird and the machine); those are refused with both
indices, so the job can use the index.
"""

from __future__ import annotations

import difflib
import functools
from importlib import resources

__all__ = ["NUM_CLASSES", "class_names", "class_index"]

NUM_CLASSES = 1000


@functools.cache
def class_names() -> tuple[str, ...]:
    """Each class's lemmas, comma-separated, by index."""
    text = resources.files(__package__).joinpath("imagenet_classes.tsv").read_text(encoding="utf-8")
    names = tuple(line.split("\t")[2] for line in text.splitlines())
    assert len(names) == NUM_CLASSES, "imagenet_classes.tsv is incomplete"
    return names


@functools.cache
def _lemma_index() -> dict[str, tuple[int, ...]]:
    index: dict[str, tuple[int, ...]] = {}
    for number, lemmas in enumerate(class_names()):
        for lemma in lemmas.split(","):
            key = lemma.strip().lower()
            index[key] = index.get(key, ()) + (number,)
    return index


def class_index(name: str) -> int:
    """The index of the ImageNet class called `name`; ValueError names the problem.

    >>> class_index("golden retriever"), class_index("  Tinca tinca ")
    (207, 0)
    >>> class_index("crane")
    Traceback (most recent call last):
    ValueError: 'crane' names several ImageNet classes: 134 (crane), 517 (crane); give the index
    """
    matches = _lemma_index().get(name.strip().lower(), ())
    if len(matches) == 1:
        return matches[0]
    if matches:
        listed = ", ".join(f"{m} ({class_names()[m]})" for m in matches)
        raise ValueError(f"{name!r} names several ImageNet classes: {listed}; give the index")
    close = difflib.get_close_matches(name.strip().lower(), _lemma_index(), n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"{name!r} is not an ImageNet class name{hint}")
