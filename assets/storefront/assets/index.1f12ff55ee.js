// Lists coupons from the API the proxy forwards to the app.
const list = document.getElementById("coupons");
const form = document.getElementById("search");

async function load(search, filterType) {
  const params = new URLSearchParams({ search, filterType, size: "20" });
  const res = await fetch(`/api/v1/coupons?${params}`);
  const body = await res.json();
  list.replaceChildren();
  for (const c of body.data?.content ?? []) {
    const li = document.createElement("li");
    li.textContent = `${c.brand} — ${c.title} (${c.issuedQuantity}/${c.totalQuantity})`;
    const status = document.createElement("span");
    status.className = "status";
    status.textContent = c.status;
    li.append(status);
    list.append(li);
  }
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  load(form.q.value, form.f.value);
});
load("", "ISSUING");
