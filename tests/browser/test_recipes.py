"""The recipe editor: a recipe made on the page switches the relay on an ESP datagram;
bad input is explained next to its field and nothing is saved."""

from __future__ import annotations

from tests.support import wait_for

from .conftest import expect


def recipes_view(open_page):
    """A logged-in tab on the Recipes view, and its page."""
    tab = open_page().open("recipes").login()
    tab.view("recipes")
    return tab, tab.page


def submit_recipe(page, **fields: str) -> None:
    """A new recipe filled in on the editor (as `fill_recipe` takes them) and submitted."""
    fill_recipe(page, **fields)
    page.click("#recipe-form button[type=submit]")


def fill_recipe(page, *, name: str, node: str, thing: str, relation: str, value: str) -> None:
    page.click("#recipe-new")
    page.fill("#r-name", name)
    page.select_option("#r-node", "other")
    page.fill("#r-node-id", node)
    page.select_option("#r-thing", "other")
    page.fill("#r-thing-id", thing)
    page.select_option("#r-relation", label=relation)
    page.fill("#r-target", value)
    page.select_option("#r-local", label="Plug")
    page.select_option("#r-value-switch", label="On")


def test_a_recipe_from_the_editor_follows_an_esp_node(open_page, plug):
    tab, page = recipes_view(open_page)
    submit_recipe(page, name="Warm kitchen", node="777", thing="5", relation="is below", value="19")
    expect(page.locator("#recipe-form")).to_be_hidden()
    item = page.locator("#recipe-list li").first
    expect(item).to_contain_text("If node 777: Unlabelled value (id 5) is below 19, set Plug to On.")
    expect(item).to_contain_text("does not match")
    assert plug.ask("status")["relay"] is False

    plug.send_udp(b"777:Kitchen&5:18.00")
    wait_for(lambda: plug.ask("status")["relay"], "the recipe to switch the relay on")
    expect(item).to_contain_text("matches now")  # asked again when its source is heard
    expect(item).to_contain_text("Kitchen (777)")
    expect(item).to_contain_text("Last value seen: 18.")
    tab.view("dashboard")
    expect(page.locator("#relay-switch")).to_have_attribute("aria-checked", "true")
    assert tab.errors == []


def test_bad_input_is_shown_next_to_its_field_and_nothing_is_saved(open_page, plug):
    tab, page = recipes_view(open_page)
    submit_recipe(page, name="Heat & cool", node="kitchen", thing="5", relation="is above", value="warm")
    # Found by the page: not numbers.
    expect(page.locator("[data-field=sourceNodeId] .field-error")).to_contain_text("whole number")
    expect(page.locator("[data-field=targetValue] .field-error")).to_contain_text("Type a number")
    expect(page.locator("#r-target")).to_have_attribute("aria-invalid", "true")

    page.fill("#r-node-id", "777")
    page.fill("#r-target", "21")
    page.click("#recipe-form button[type=submit]")
    # Found by the daemon: its error names recipe.name, shown under the name.
    name_error = page.locator("[data-field=name] .field-error")
    expect(name_error).to_contain_text("must not contain '&'")
    expect(page.locator("[data-field=targetValue] .field-error")).to_be_hidden()
    expect(page.locator("#recipe-form")).to_be_visible()
    assert plug.ask("recipes")["recipes"] == []
    assert tab.errors == []


def test_recipes_are_reordered_and_deleted(open_page, plug):
    tab, page = recipes_view(open_page)
    for name, relation, value in (("Cold", "is below", "19"), ("Warm", "is above", "21")):
        submit_recipe(page, name=name, node="777", thing="5", relation=relation, value=value)
        expect(page.locator("#recipe-form")).to_be_hidden()
    names = page.locator("#recipe-list li h3")
    expect(names).to_have_text(["Cold", "Warm"])
    page.click("[aria-label='Move Warm up']")
    expect(names).to_have_text(["Warm", "Cold"])
    assert [r["name"] for r in plug.ask("recipes")["recipes"]] == ["Warm", "Cold"]

    page.locator("#recipe-list li", has_text="Cold").locator("button", has_text="Edit").click()
    expect(page.locator("#recipe-form-title")).to_have_text('Edit "Cold"')
    expect(page.locator("#r-node-id")).to_have_value("777")  # a node not heard yet: typed
    expect(page.locator("#r-target")).to_have_value("19")
    page.fill("#r-target", "18.5")
    page.click("#recipe-form button[type=submit]")
    expect(page.locator("#recipe-list li", has_text="Cold")).to_contain_text("is below 18.5")
    expect(names).to_have_text(["Warm", "Cold"])

    delete = page.locator("#recipe-list li", has_text="Warm").locator("button", has_text="Delete")
    delete.click()
    expect(delete).to_have_text("Really delete?")  # a second tap deletes
    delete.click()
    expect(names).to_have_text(["Cold"])
    assert [r["name"] for r in plug.ask("recipes")["recipes"]] == ["Cold"]
    assert tab.errors == []


def test_naming_a_value_renames_it_in_the_recipes_sentence_and_editor(open_page, plug):
    tab, page = recipes_view(open_page)
    plug.send_udp(b"777:Fridge&2:80.00")
    submit_recipe(page, name="Fridge guard", node="777", thing="2", relation="is above", value="100")
    item = page.locator("#recipe-list li").first
    expect(item).to_contain_text("If Fridge (777): Power (assumed) is above 100 W, set Plug to On.")

    tab.view("nodes")
    fridge = page.locator("#node-list li[data-node='777']")
    fridge.locator("tr", has_text="Power (assumed)").locator("button", has_text="Label").click()
    page.fill("#l-name", "Fridge power")
    page.click("#label-form button[type=submit]")
    expect(fridge).to_contain_text("Fridge power")

    tab.view("recipes")
    expect(item).to_contain_text("If Fridge (777): Fridge power is above 100 W, set Plug to On.")
    item.locator("button", has_text="Edit").click()
    expect(page.locator("#r-thing option:checked")).to_contain_text("Fridge power, now 80 W")
    assert tab.errors == []
