#!/usr/bin/env python3
"""Builds the tokenizer fixtures that tests/unit/tokenizer_test.cc checks megalith against.

Trains three small byte-level BPE tokenizers with the Hugging Face `tokenizers` package, one per
style megalith must read, and records how `tokenizers` encodes and decodes a corpus of hard
strings. The C++ tests only read the committed output, so CI needs no Python.

    pip install tokenizers
    python3 tests/tokenizer/make_fixtures.py --out tests/tokenizer/fixtures

Styles:
  llama3  Split regex with \\p{N}{1,3} + ByteLevel(use_regex=False), ignore_merges, the Llama-3
          special tokens after the vocabulary, TemplateProcessing that prepends
          <|begin_of_text|>.
  qwen2   NFC normalizer, the single-digit Split regex, ChatML special tokens, non-special
          <think> tokens, no template.
  gpt2    the classic ByteLevel(add_prefix_space=True, use_regex=True) pre-tokenizer, plus added
          tokens with lstrip, rstrip and single_word set.
"""

import argparse
import json
import random
from pathlib import Path

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors, trainers

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                   "<|reserved_special_token_1|>", "<|start_header_id|>", "<|end_header_id|>",
                   "<|reserved_special_token_2|>", "<|eot_id|>"]
QWEN2_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Words added to the llama3 vocabulary after training that its merges do not build, so only
# ignore_merges (look the whole pre-token up first) yields them as one id.
IGNORE_MERGES_WORDS = ["Ġquokka", "Ġxylophone", "Ġwombat", "Ġfjord", "Ġsphinx"]

TRAINING_TEXT = """\
It was a bright cold day in April, and the clocks were striking thirteen. The wind swept the
streets clean of dust and paper, and the people hurried home before the rain.
The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs!
She said: "I'm sure they'll come, and we've waited long enough; you'd think they're lost."
He didn't know what he'd done, but he'll learn. It's the way it's always been, isn't it?
Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 100 250 1000 2024 31415 65536 1048576 3.14159 2.71828
Dates like 2024-01-31, times like 12:45:07, prices like $19.99 and 5% off, ranges 1-10.
def main(argc, argv):
    for i in range(10):
        print(f"value {i}: {i * i}")
    return 0
int main(int argc, char** argv) { std::vector<int> v{1, 2, 3}; return v.size() > 2 ? 0 : 1; }
{"name": "megalith", "version": "0.1.0", "layers": [1, 2, 3], "ok": true}
The megakernel runs every layer of a decode step inside one persistent kernel launch.
Weights stream from memory into shared memory while the worker waits for its inputs.
Le renard brun rapide saute par-dessus le chien paresseux. Où est la bibliothèque ? Très bien.
Der schnelle braune Fuchs springt über den faulen Hund. Grüße aus München, Straße und Fluß.
El rápido zorro marrón salta sobre el perro perezoso. ¿Dónde está la estación? ¡Olé!
Быстрая коричневая лиса прыгает через ленивую собаку. Привет, мир! Как дела?
Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο. Γειά σου κόσμε.
敏捷的棕色狐狸跳过了懒狗。你好，世界！今天天气很好。我们一起去吃饭吧。
素早い茶色の狐が怠け者の犬を飛び越える。こんにちは世界。東京は大きな都市です。
빠른 갈색 여우가 게으른 개를 뛰어넘는다. 안녕하세요 세계.
الثعلب البني السريع يقفز فوق الكلب الكسول. مرحبا بالعالم.
השועל החום המהיר קופץ מעל הכלב העצלן. שלום עולם.
तेज़ भूरी लोमड़ी आलसी कुत्ते के ऊपर कूदती है। नमस्ते दुनिया।
Emoji: 😀 😃 😄 👍 👍🏽 ❤️ 🎉 🚀 👨‍👩‍👧‍👦 🏳️‍🌈 🇩🇪 🇯🇵
Tabs	and		spaces    and newlines
and windows line endings\r\nin text.\r\n
"""


def training_corpus():
    """The text above plus generated lines, so a vocabulary of a thousand or two fills up."""
    rng = random.Random(1234)
    lines = TRAINING_TEXT.splitlines(keepends=True) * 20
    words = TRAINING_TEXT.split()
    for _ in range(3000):
        lines.append(" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) + "\n")
        lines.append(str(rng.randint(0, 10 ** rng.randint(1, 9))) + " ")
    return lines


def hard_strings(specials):
    """Strings where a tokenizer is easy to get wrong. `specials` are glued into some of them."""
    s = [
        "", " ", "  ", "\t", "\n", "\r\n", "\n\n\n", " \n ", "\t\t  \t", "a", "Hello, world!",
        "Hello world", " Hello world", "  Hello  world  ", "hello\tworld\n", "line one\r\nline two\r\n",
        "trailing spaces   ", "   leading spaces", "mixed \t \n \r\n whitespace \n\n  runs",
        "The megakernel runs every layer of a decode step inside one persistent kernel launch.",
        "quokka xylophone wombat fjord sphinx", "a quokka, the wombat; fjord!", "quokkas Xylophone",
        # contractions in every case
        "I'm you're he's she'll we've they'd it's can't won't",
        "I'M YOU'RE HE'S SHE'LL WE'VE THEY'D IT'S CAN'T",
        "'s 't 're 've 'm 'll 'd 'S 'T 'RE 'VE 'M 'LL 'D 'Ll 'lL 'Re 'vE",
        "don''t ''s '''ll 'x 'sx 's's", "rock'n'roll o'clock", "'ſ 'K",
        # digits runs of every length
        *["".join(str((i + k) % 10) for k in range(n)) for i, n in enumerate(range(1, 21))],
        "1 22 333 4444 55555 666666", "a1b22c333d4444", "3.14159 -42 +7 1e10 0x1F 1,000,000",
        "٣٤٥ ۱۲۳ १२३ ①②③ ½ ¾ Ⅻ", "12:45:07 2024-01-31 $19.99 5%",
        # unicode
        "Où est la bibliothèque ? Très bien.", "Grüße aus München", "Быстрая коричневая лиса",
        "敏捷的棕色狐狸跳过了懒狗。", "こんにちは世界", "안녕하세요 세계", "مرحبا بالعالم", "שלום עולם",
        "नमस्ते दुनिया", "ภาษาไทย", "ἀρχή", "ﬁ ﬂ ﬀ", "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
        # combining marks (NFC changes some of these)
        "e\u0301 a\u0300 o\u0308 n\u0303", "e\u0301\u0301\u0301", "\u0301 starts with a mark",
        "Å vs A\u030a vs \u212b", "\u1100\u1161\u11a8", "Zalgo: Z\u0351\u036b\u0343a\u0310l\u0308g\u0301o",
        # RTL and bidi controls
        "abc \u202eRTL override\u202c def", "עברית and English mixed", "\u200fmark\u200e",
        # emoji and ZWJ sequences
        "😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇩🇪🇯🇵", "❤️‍🔥", "😀😃😄😁😆", "emoji👍in😀text",
        "keycap 1️⃣ #️⃣", "\U0001f9d1\u200d\U0001f4bb",
        # odd whitespace and controls
        "nbsp\u00a0here", "em\u2003space", "ideographic\u3000space", "zero\u200bwidth",
        "nel\u0085next", "line\u2028sep para\u2029sep", "vt\x0bff\x0c", "ctrl\x1c\x1d\x1e\x1f",
        "\x00null\x00", "bell\x07", "\u180e mongolian", "\u202f\u205f\u1680", "\u180e!",
        "x\u180e\u180e! \u180e", "\u2000\u2001!\u3000\u3000.",
        # invalid-looking sequences
        "\ufffd", "\ufffd\ufffd", "Ã©", "â€™", "\\x80\\xff", "\ufeffBOM", "\uffff \ufffe",
        "\U0010ffff", "\ue000 private", "%C3%A9", "&amp; &#x1F600;",
        # very long words
        "a" * 300, "ab" * 200, "supercalifragilisticexpialidocious" * 10, "😀" * 100,
        "9" * 100, " " * 100, "\n" * 50, "x" * 2000,
        "Pneumonoultramicroscopicsilicovolcanoconiosis",
        # code
        "def f(x):\n    return x * 2\n", "if (a && b) { return -1; }", "std::vector<int32_t> v;",
        '{"key": [1, 2, 3], "ok": true}', "<html><body>hi</body></html>", "a->b::c",
        "#include <cstdio>\nint main() {\n\treturn 0;\n}\n",
    ]
    # special tokens glued to text, alone, repeated and half-written
    for sp in specials:
        s += [sp, sp + sp, "x" + sp + "y", " " + sp + " ", "hello" + sp, sp + "world",
              sp + "\n", "\n" + sp, sp[:-1], sp[1:], sp[:-2] + sp]
    return s


def chat_prompts():
    """The prompts that chat_template_test.cc formats, so their ids are checked too."""
    return {
        "llama3": ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                   "You are terse.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
                   "Hi! What's 12345 + 678?<|eot_id|>"
                   "<|start_header_id|>assistant<|end_header_id|>\n\n"),
        "qwen2": ("<|im_start|>system\nYou are terse.<|im_end|>\n"
                  "<|im_start|>user\nHi! What's 12345 + 678?<|im_end|>\n"
                  "<|im_start|>assistant\n"),
    }


def train(tokenizer, vocab_size):
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(training_corpus(), trainer)


def build_llama3():
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    train(tok, 1500)

    # Words the merges do not build, appended to the vocabulary like Llama-3's whole-word tokens.
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    for word in IGNORE_MERGES_WORDS:
        assert word not in vocab, word
        vocab[word] = len(vocab)
    tok = Tokenizer.from_str(json.dumps(data))
    without = Tokenizer.from_str(json.dumps({**data, "model": {**data["model"],
                                                                "ignore_merges": False}}))
    for word in IGNORE_MERGES_WORDS:
        text = word.replace("Ġ", " ")
        assert len(tok.encode(text).ids) == 1 and len(without.encode(text).ids) > 1, word

    tok.add_special_tokens(LLAMA3_SPECIALS)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    return tok, LLAMA3_SPECIALS


def build_qwen2():
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    train(tok, 1200)
    tok.add_special_tokens(QWEN2_SPECIALS)
    tok.add_tokens([AddedToken("<think>", special=False, normalized=False),
                    AddedToken("</think>", special=False, normalized=False)])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok, QWEN2_SPECIALS + ["<think>", "</think>"]


def build_gpt2():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel()
    tok.decoder = decoders.ByteLevel()
    train(tok, 1000)
    tok.add_special_tokens(["<|endoftext|>",
                            AddedToken("<mask>", lstrip=True, rstrip=False, special=True)])
    tok.add_tokens([AddedToken("megalith", single_word=True),
                    AddedToken("[END]", rstrip=True)])
    return tok, ["<|endoftext|>", "<mask>", "megalith", "[END]"]


def decode_cases(tok, rng):
    """Id sequences no encoder produces: single bytes that split a UTF-8 character, specials."""
    n = tok.get_vocab_size()
    cases = [[], [n - 1], [n - 1, 0, n - 1]]
    for _ in range(60):
        cases.append([rng.randrange(n) for _ in range(rng.randint(1, 12))])
    vocab = tok.get_vocab()
    byte_tokens = ["Ã", "¤", "ð", "Ł", "ĺ", "Ģ", "ł", "Ŀ", "ħ"]  # bytes C3 A4 F0 9F 98 80 ...
    ids = [vocab[t] for t in byte_tokens if t in vocab]
    for i in range(len(ids) + 1):
        cases.append(ids[:i])
        cases.append(ids[i:])
    return cases


def record(tok, specials, name, out_dir):
    rng = random.Random(7)
    cases = []
    strings = hard_strings(specials)
    if name in chat_prompts():
        strings.append(chat_prompts()[name])
    for text in strings:
        plain = tok.encode(text, add_special_tokens=False).ids
        with_special = tok.encode(text, add_special_tokens=True).ids
        cases.append({
            "text": text,
            "pre_tokens": [piece for piece, _ in tok.pre_tokenizer.pre_tokenize_str(text)],
            "ids": plain,
            "ids_with_special": with_special,
            "decoded": tok.decode(plain, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(with_special, skip_special_tokens=True),
        })
    decodes = [{"ids": ids,
                "text": tok.decode(ids, skip_special_tokens=False),
                "text_skip_special": tok.decode(ids, skip_special_tokens=True)}
               for ids in decode_cases(tok, rng)]
    expected = {
        "tokenizers_version": tokenizers.__version__,
        "vocab_size": tok.get_vocab_size(),
        "added_tokens": {t: tok.token_to_id(t) for t in specials},
        "id_to_token": {str(i): tok.id_to_token(i) for i in range(0, tok.get_vocab_size(), 97)},
        "encode": cases,
        "decode": decodes,
    }
    target = out_dir / name
    target.mkdir(parents=True, exist_ok=True)
    data = json.loads(tok.to_str())
    if name == "llama3":
        # Llama-3's files keep the legacy "a b" merge strings; the others use [a, b] pairs.
        data["model"]["merges"] = [" ".join(pair) for pair in data["model"]["merges"]]
    with open(target / "tokenizer.json", "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, separators=(",", ":"))
    reloaded = Tokenizer.from_file(str(target / "tokenizer.json"))
    for case in cases:
        assert reloaded.encode(case["text"]).ids == case["ids_with_special"], case["text"]
    with open(target / "expected.json", "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "fixtures")
    args = parser.parse_args()
    for name, build in [("llama3", build_llama3), ("qwen2", build_qwen2), ("gpt2", build_gpt2)]:
        tok, specials = build()
        record(tok, specials, name, args.out)
        print(f"{name}: vocab {tok.get_vocab_size()}")


if __name__ == "__main__":
    main()
