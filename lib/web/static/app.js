// The home page: search as you type, pick liked movies, ask /api/recommend.
// Every string from the server is written with textContent, never as HTML.
"use strict";
const search = document.getElementById("search");
const suggestions = document.getElementById("suggestions");
const likedList = document.getElementById("liked");
const results = document.getElementById("results");
const message = document.getElementById("message");
const liked = new Map();  // movie id -> title, in the order picked
let pending = null;

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function movieLink(movie) {
  const a = el("a", movie.title);
  a.href = "/movies/" + encodeURIComponent(movie.movie_id);
  return a;
}

function showLiked() {
  likedList.replaceChildren();
  if (liked.size === 0) likedList.append(el("li", "none yet", "empty"));
  for (const [id, title] of liked) {
    const li = el("li", undefined, "liked-movie");
    li.dataset.movieId = id;
    li.append(el("span", title));
    const drop = el("button", "×", "remove");
    drop.type = "button";
    drop.title = "remove " + title;
    drop.addEventListener("click", () => { liked.delete(id); showLiked(); });
    li.append(drop);
    likedList.append(li);
  }
}

async function lookUp(query) {
  const response = await fetch("/api/search?limit=10&q=" + encodeURIComponent(query));
  const body = await response.json();
  if (query !== search.value.trim()) return;  // typed on meanwhile
  suggestions.replaceChildren();
  if (!response.ok) { message.textContent = body.error; return; }
  if (body.movies.length === 0 && query) suggestions.append(el("li", "no title matches", "empty"));
  for (const movie of body.movies) {
    const li = el("li", undefined, "suggestion");
    li.setAttribute("role", "option");
    li.dataset.movieId = movie.movie_id;
    li.append(el("span", movie.title), el("span", " " + movie.genres.join(", "), "genres"));
    li.addEventListener("click", () => {
      liked.set(movie.movie_id, movie.title);
      showLiked();
      search.value = "";
      suggestions.replaceChildren();
      search.focus();
    });
    suggestions.append(li);
  }
}

search.addEventListener("input", () => {
  clearTimeout(pending);
  const query = search.value.trim();
  if (!query) { suggestions.replaceChildren(); return; }
  pending = setTimeout(() => lookUp(query).catch(err => { message.textContent = String(err); }), 150);
});

document.getElementById("go").addEventListener("click", async () => {
  const body = {liked: [...liked.keys()], k: 10};
  for (const select of document.querySelectorAll("select[data-field]")) {
    if (select.value) body[select.dataset.field] = select.value;
  }
  message.textContent = "…";
  results.replaceChildren();
  const response = await fetch("/api/recommend", {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  const answer = await response.json();
  if (!response.ok) { message.textContent = answer.error; return; }
  message.textContent = "Top " + answer.recommendations.length + " for you:";
  for (const movie of answer.recommendations) {
    const li = el("li", undefined, "recommendation");
    li.append(movieLink(movie), el("span", " " + movie.genres.join(", "), "genres"));
    if (movie.because && movie.because.length) {
      const why = el("div", "because you liked ", "because");
      movie.because.forEach((b, i) => { if (i) why.append(", "); why.append(movieLink(b)); });
      li.append(why);
    }
    results.append(li);
  }
});
