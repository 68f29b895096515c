"""Just enough of a DOM to read the app's HTML answers: every element with its
attributes and its text."""
from html.parser import HTMLParser


class Html(HTMLParser):
    """Just enough of a DOM: every element with its attributes and its text."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self, markup):
        super().__init__(convert_charrefs=True)
        self.elements = []
        self._open = []
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag, attrs):
        element = {"tag": tag, "attrs": dict(attrs), "text": "", "parent": self._open[-1] if self._open else None}
        self.elements.append(element)
        if tag not in self.VOID:
            self._open.append(element)

    def handle_startendtag(self, tag, attrs):
        self.elements.append({"tag": tag, "attrs": dict(attrs), "text": "",
                              "parent": self._open[-1] if self._open else None})

    def handle_endtag(self, tag):
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i]["tag"] == tag:
                del self._open[i:]
                break

    def handle_data(self, data):
        for element in self._open:
            element["text"] += data

    def find_all(self, tag=None, text=None, **attrs):
        return [e for e in self.elements
                if (tag is None or e["tag"] == tag)
                and (text is None or squash(e["text"]) == text)
                and all(e["attrs"].get(k.rstrip("_").replace("_", "-")) == v for k, v in attrs.items())]

    def by_id(self, element_id):
        found = [e for e in self.elements if e["attrs"].get("id") == element_id]
        assert len(found) == 1, f"{len(found)} elements with id {element_id!r}"
        return found[0]

    def text(self, element_id):
        return squash(self.by_id(element_id)["text"])

    def value(self, name):
        inputs = [e for e in self.elements if e["tag"] == "input" and e["attrs"].get("name") == name]
        assert len(inputs) == 1, f"{len(inputs)} inputs named {name!r}"
        return inputs[0]["attrs"].get("value") or ""

    def checked(self, name):
        return "checked" in self.find_all("input", name=name)[0]["attrs"]

    def error_ids(self):
        return {e["attrs"]["id"] for e in self.elements if e["attrs"].get("id", "").endswith("-error")}

    def all_text(self):
        return " ".join(squash(e["text"]) for e in self.elements if e["tag"] in ("p", "h1", "h2", "h3", "h4", "li", "span", "div"))


def squash(text):
    return " ".join(text.split())
