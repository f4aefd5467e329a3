"""Everyday sentences per language for the synthetic corpus, and the espeak-ng voice of each language.

Every language holds 14 plain, natural sentences of about 2–5 seconds of speech at the default
speaking rate. Chinese is written in characters (no pinyin), so a character-level CTC model
trained on the corpus sees real Mandarin text.
"""
from __future__ import annotations

from typing import Dict, List, NamedTuple


class Language(NamedTuple):
    """One language of the corpus.

    ``label`` is the value written to ``utt2language``; ``espeak_voice`` the espeak-ng language
    voice it is rendered with; ``name`` the English name used in captions; ``tag`` its tag token;
    ``rate_scale`` multiplies the speaking rate (espeak-ng reads Mandarin syllables slowly, so
    Mandarin is spoken 1.3x faster to keep its sentences within about 2–5 s).
    """

    label: str
    espeak_voice: str
    name: str
    tag: str
    rate_scale: float = 1.0


LANGUAGES: Dict[str, Language] = {
    "en": Language("en", "en-us", "English", "english"),
    "cmn": Language("cmn", "cmn", "Mandarin Chinese", "chinese", 1.3),
    "de": Language("de", "de", "German", "german"),
    "fr": Language("fr", "fr-fr", "French", "french"),
    "es": Language("es", "es", "Spanish", "spanish"),
}

SENTENCES: Dict[str, List[str]] = {
    "en": [
        "The weather is lovely today, so we walked to the park.",
        "Could you pass me the salt, please?",
        "I left my keys on the kitchen table this morning.",
        "The train to the city leaves at half past seven.",
        "My sister bought a new bicycle last week.",
        "We should water the plants before we go out.",
        "The shop on the corner closes early on Sundays.",
        "He made a big pot of soup for dinner.",
        "Please remember to lock the door when you leave.",
        "The children played football in the garden all afternoon.",
        "I need to buy bread and milk on the way home.",
        "Our neighbours are painting their house blue.",
        "She reads the newspaper with her coffee every morning.",
        "The meeting has been moved to Thursday afternoon.",
    ],
    "cmn": [
        "今天天气很好，我们去公园吧。",
        "请把盐递给我，好吗？",
        "我早上把钥匙忘在桌子上了。",
        "火车七点半从车站出发。",
        "我妹妹上周买了一辆新自行车。",
        "出门之前我们应该给花浇水。",
        "街角的商店星期天关门很早。",
        "他晚饭做了一大锅汤。",
        "离开的时候请记得锁门。",
        "孩子们整个下午都在院子里踢球。",
        "回家路上我要买面包和牛奶。",
        "我们的邻居正在把房子刷成蓝色。",
        "她每天早上一边喝咖啡一边看报纸。",
        "会议改到星期四下午了。",
    ],
    "de": [
        "Das Wetter ist heute schön, also gehen wir in den Park.",
        "Kannst du mir bitte das Salz geben?",
        "Ich habe meine Schlüssel heute Morgen auf dem Tisch vergessen.",
        "Der Zug in die Stadt fährt um halb acht ab.",
        "Meine Schwester hat letzte Woche ein neues Fahrrad gekauft.",
        "Wir sollten die Blumen gießen, bevor wir gehen.",
        "Der Laden an der Ecke schließt sonntags früh.",
        "Er hat zum Abendessen einen großen Topf Suppe gekocht.",
        "Bitte denk daran, die Tür abzuschließen.",
        "Die Kinder haben den ganzen Nachmittag im Garten gespielt.",
        "Auf dem Heimweg muss ich Brot und Milch kaufen.",
        "Unsere Nachbarn streichen ihr Haus blau.",
        "Sie liest jeden Morgen beim Kaffee die Zeitung.",
        "Die Besprechung wurde auf Donnerstag verschoben.",
    ],
    "fr": [
        "Il fait beau aujourd'hui, alors allons au parc.",
        "Peux-tu me passer le sel, s'il te plaît ?",
        "J'ai oublié mes clés sur la table ce matin.",
        "Le train pour la ville part à sept heures et demie.",
        "Ma sœur a acheté un nouveau vélo la semaine dernière.",
        "Nous devrions arroser les fleurs avant de partir.",
        "Le magasin du coin ferme tôt le dimanche.",
        "Il a préparé une grande marmite de soupe pour le dîner.",
        "N'oublie pas de fermer la porte à clé en partant.",
        "Les enfants ont joué dans le jardin tout l'après-midi.",
        "Je dois acheter du pain et du lait en rentrant.",
        "Nos voisins repeignent leur maison en bleu.",
        "Elle lit le journal en buvant son café chaque matin.",
        "La réunion a été déplacée à jeudi après-midi.",
    ],
    "es": [
        "Hoy hace buen tiempo, así que vamos al parque.",
        "¿Me pasas la sal, por favor?",
        "Esta mañana dejé las llaves encima de la mesa.",
        "El tren a la ciudad sale a las siete y media.",
        "Mi hermana compró una bicicleta nueva la semana pasada.",
        "Deberíamos regar las plantas antes de salir.",
        "La tienda de la esquina cierra temprano los domingos.",
        "Él preparó una olla grande de sopa para la cena.",
        "Por favor, recuerda cerrar la puerta con llave.",
        "Los niños jugaron en el jardín toda la tarde.",
        "Tengo que comprar pan y leche de camino a casa.",
        "Nuestros vecinos están pintando su casa de azul.",
        "Ella lee el periódico con su café cada mañana.",
        "La reunión se ha cambiado al jueves por la tarde.",
    ],
}


def check_languages(labels: List[str]) -> None:
    """Raise ValueError naming any language label without a voice or sentences."""
    unknown = [lab for lab in labels if lab not in LANGUAGES or lab not in SENTENCES]
    if unknown:
        raise ValueError(f"unknown language(s) {unknown}; known: {sorted(LANGUAGES)}")
