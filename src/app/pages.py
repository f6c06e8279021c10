"""The web pages: the prediction form (home) and its answers. The form posts a plain HTML form (CSRF-protected),
so it works without JavaScript; the JavaScript only turns the pickers into search-as-you-type boxes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, current_app, render_template, request
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup, escape

from app.errors import status_for
from app.runtime import model_quality, runtime
from pronostico.core.serving import NoModel, ServingModel
from pronostico.core.usecases import USE_CASES
from pronostico.core.usecases.base import InputField, RequestError, UseCase

blueprint = Blueprint("pages", __name__)

@dataclass
class Card:
    """One use case's form on the page, with what the user sent, the answer or the error."""

    use_case: UseCase
    model: ServingModel | None = None
    unavailable: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    answer: dict[str, Any] | None = None
    error: RequestError | None = None

    @property
    def name(self) -> str:
        return self.use_case.name

    def entities(self) -> list[dict[str, Any]]:
        if self.model is None:
            return []
        key = self.use_case.entity_key
        return sorted(self.model.entities(), key=lambda e: str(e[key]).lower())

    def options(self, field_name: str) -> Markup:
        """The picker's <option>s with the value the user sent selected. The markup is built once per model version:
        rendered in the template it cost 10 ms a page, ten times a prediction (docs/BENCHMARKS.md)."""
        if self.model is None:
            return Markup("")
        html = runtime().per_model("options", self.model, lambda: entity_options(self.use_case, self.entities()))
        chosen = self.values.get(field_name)
        if chosen:
            needle = f'<option value="{escape(chosen)}"'  # the closing quote makes it one exact value
            html = html.replace(needle, f"{needle} selected", 1)
        return Markup(html)

    def quality(self) -> dict[str, Any] | None:
        return model_quality(self.model) if self.model else None

    def bars(self) -> list[dict[str, Any]]:
        if not self.answer:
            return []
        return [{"class": name, "label": self.use_case.class_label(name, self.answer), "probability": p}
                for name, p in self.answer["probabilities"].items()]

    def predicted(self) -> str:
        return self.answer[self.use_case.answer_class_field] if self.answer else ""

    def headline(self) -> str:
        return self.use_case.headline(self.answer) if self.answer else ""

    def fields(self, kind: str) -> list[InputField]:
        return [f for f in self.use_case.input_fields if f.kind == kind]


def entity_options(use_case: UseCase, entities: list[dict[str, Any]]) -> str:
    """One <option> per entity, carrying what the picker shows beside the name in data-data."""
    parts = []
    for entity in entities:
        value = entity[use_case.entity_key]
        data = {"hint": use_case.entity_hint(entity)}
        attribute = htmlsafe_json_dumps(data, dumps=current_app.json.dumps)
        parts.append(f"<option value=\"{escape(value)}\" data-data='{attribute}'>{escape(value)}</option>")
    return "\n".join(parts)


def build_cards() -> dict[str, Card]:
    cards = {}
    for name, use_case in USE_CASES.items():
        card = Card(use_case)
        try:
            card.model = runtime().model(name)
        except NoModel as error:
            card.unavailable = str(error)
        cards[name] = card
    return cards


def render_home(cards: dict[str, Card], status: int = 200, focus: str = "") -> tuple[str, int]:
    return render_template("index.html", cards=cards, focus=focus), status


@blueprint.get("/")
def index() -> tuple[str, int]:
    return render_home(build_cards())


@blueprint.post("/predict/<use_case>")
def predict(use_case: str) -> tuple[str, int]:
    cards = build_cards()
    card = cards.get(use_case)
    if card is None:
        runtime().model(use_case)  # raises UnknownUseCase: a 404 page
        raise AssertionError("unreachable")
    card.values = form_payload(card.use_case)
    if card.model is None:
        raise NoModel(card.unavailable)
    try:
        card.answer = runtime().answer_and_log(use_case, card.values, "form")
    except RequestError as error:
        card.error = error
        return render_home(cards, status_for(error), focus=use_case)
    return render_home(cards, focus=use_case)


def form_payload(use_case: UseCase) -> dict[str, Any]:
    """The form's fields as the API's JSON would carry them: a checkbox is a boolean, an empty option is absent."""
    payload: dict[str, Any] = {}
    for input_field in use_case.input_fields:
        if input_field.kind == "bool":
            payload[input_field.name] = request.form.get(input_field.name) in ("on", "true", "1", "yes")
            continue
        value = request.form.get(input_field.name, "").strip()
        if value or input_field.required:
            payload[input_field.name] = value
    return payload
