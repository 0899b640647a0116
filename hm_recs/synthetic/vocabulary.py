"""The H&M file's vocabularies (code <-> name pairs, sections, departments, product types, colours) and the
planted-taste constants the generator draws from."""

from __future__ import annotations

#: Prices in the H&M file are SEK amounts divided by this constant.
PRICE_SCALE = 59_000.0


#: Planted customer segments, in the order used by ``SyntheticConfig.segment_shares``.
SEGMENTS: tuple[str, ...] = (
    "bestseller_follower",
    "index_loyal",
    "discount_hunter",
    "seasonal",
    "default",
)


FOLLOWER, LOYAL, HUNTER, SEASONAL, _DEFAULT = range(len(SEGMENTS))


#: index_code, index_name, index_group_no, index_group_name
INDEXES: tuple[tuple[str, str, int, str], ...] = (
    ("A", "Ladieswear", 1, "Ladieswear"),
    ("B", "Lingeries/Tights", 1, "Ladieswear"),
    ("C", "Ladies Accessories", 1, "Ladieswear"),
    ("D", "Divided", 2, "Divided"),
    ("F", "Menswear", 3, "Menswear"),
    ("G", "Baby Sizes 50-98", 4, "Baby/Children"),
    ("H", "Children Sizes 92-140", 4, "Baby/Children"),
    ("I", "Children Sizes 134-170", 4, "Baby/Children"),
    ("J", "Children Accessories, Swimwear", 4, "Baby/Children"),
    ("S", "Sport", 26, "Sport"),
)


#: Index taste by sex and age, one row per entry of ``INDEXES``:
#: (female base, female youth boost, female maturity boost,
#:  male base, male youth boost, male maturity boost, parent boost, parent age centre).
#: Youth boosts apply below ``YOUTH_AGE``, maturity boosts above ``MATURITY_AGE`` (logistic), the
#: parent boost is a bump of width ``PARENT_AGE_WIDTH`` around the age of a parent of such children.
INDEX_TASTE: tuple[tuple[float, ...], ...] = (
    (1.00, 0.0, 2.0, 0.05, 0.0, 0.10, 0.0, 0.0),  # A Ladieswear
    (0.80, 0.0, 0.2, 0.02, 0.0, 0.00, 0.0, 0.0),  # B Lingeries/Tights
    (0.70, 0.5, 0.0, 0.10, 0.0, 0.00, 0.0, 0.0),  # C Ladies Accessories
    (0.30, 3.0, 0.0, 0.20, 1.0, 0.00, 0.0, 0.0),  # D Divided
    (0.20, 0.0, 0.1, 5.00, 0.0, 0.00, 0.0, 0.0),  # F Menswear
    (0.08, 0.0, 0.0, 0.05, 0.0, 0.00, 3.0, 31.0),  # G Baby
    (0.08, 0.0, 0.0, 0.05, 0.0, 0.00, 3.0, 37.0),  # H Children 92-140
    (0.08, 0.0, 0.0, 0.05, 0.0, 0.00, 2.5, 43.0),  # I Children 134-170
    (0.05, 0.0, 0.0, 0.03, 0.0, 0.00, 1.2, 37.0),  # J Children accessories
    (0.35, 0.2, 0.0, 0.80, 0.2, 0.00, 0.0, 0.0),  # S Sport
)


YOUTH_AGE = 26.0


YOUTH_AGE_SCALE = 3.0


MATURITY_AGE = 35.0


MATURITY_AGE_SCALE = 5.0


PARENT_AGE_WIDTH = 7.0


#: Parenthood probability peaks at this age (bump of width ``PARENT_PROB_WIDTH``).
PARENT_PROB_AGE = 37.0


PARENT_PROB_WIDTH = 9.0


#: Age band edges used by bestseller followers ("popular in my age group").
AGE_BAND_EDGES: tuple[float, ...] = (25.0, 35.0, 50.0)


#: section_no, section_name, index_code, age centre of its shoppers
SECTIONS: tuple[tuple[int, str, str, float], ...] = (
    (16, "Womens Everyday Basics", "A", 38.0),
    (15, "Womens Everyday Collection", "A", 42.0),
    (18, "Womens Trend", "A", 27.0),
    (14, "Womens Premium", "A", 52.0),
    (11, "Womens Tailoring", "A", 45.0),
    (61, "Womens Lingerie", "B", 32.0),
    (62, "Womens Nightwear, Socks & Tigh", "B", 42.0),
    (60, "Womens Swimwear, beachwear", "B", 30.0),
    (66, "Womens Small accessories", "C", 30.0),
    (64, "Womens Shoes", "C", 36.0),
    (65, "Womens Big accessories", "C", 40.0),
    (53, "Divided Collection", "D", 21.0),
    (51, "Divided Basics", "D", 22.0),
    (52, "Divided Accessories", "D", 20.0),
    (21, "Contemporary Casual", "F", 30.0),
    (20, "Contemporary Smart", "F", 42.0),
    (26, "Men Underwear", "F", 38.0),
    (27, "Men Shoes", "F", 36.0),
    (44, "Baby Essentials & Complements", "G", 31.0),
    (40, "Baby Girl", "G", 32.0),
    (41, "Baby Boy", "G", 32.0),
    (76, "Kids Girl", "H", 37.0),
    (46, "Kids Boy", "H", 37.0),
    (45, "Kids Outerwear", "H", 38.0),
    (77, "Young Girl", "I", 43.0),
    (47, "Young Boy", "I", 43.0),
    (43, "Kids Accessories, Swimwear & D", "J", 38.0),
    (42, "Kids & Baby Shoes", "J", 35.0),
    (5, "Ladies H&M Sport", "S", 30.0),
    (22, "Men H&M Sport", "S", 32.0),
)


#: garment_group_no -> garment_group_name
GARMENT_GROUPS: dict[int, str] = {
    1002: "Jersey Basic",
    1003: "Knitwear",
    1005: "Jersey Fancy",
    1006: "Woven/Jersey/Knitted mix Baby",
    1007: "Outdoor",
    1009: "Trousers",
    1010: "Blouses",
    1011: "Shirts",
    1013: "Dresses Ladies",
    1014: "Dresses/Skirts girls",
    1016: "Trousers Denim",
    1017: "Under-, Nightwear",
    1018: "Swimwear",
    1019: "Accessories",
    1020: "Shoes",
    1021: "Socks and Tights",
}


#: Garment group whose articles mostly have the "Denim" graphical appearance.
DENIM_GARMENT_GROUP = 1016


#: department_no, department_name, section_no, garment_group_no, product types, relative size
DEPARTMENTS: tuple[tuple[int, str, int, int, tuple[int, ...], float], ...] = (
    (1676, "Jersey Basic", 16, 1002, (253, 255, 273), 3.0),
    (1626, "Knit Basic", 16, 1003, (252, 245), 1.0),
    (1643, "Jersey", 15, 1005, (254, 255, 265), 4.0),
    (1722, "Knitwear", 15, 1003, (252, 245), 3.0),
    (1747, "Trouser", 15, 1009, (272, 274), 3.0),
    (1641, "Blouse", 15, 1010, (258, 259), 3.0),
    (1644, "Dress", 15, 1013, (265, 267), 3.0),
    (1515, "Trend Jersey", 18, 1005, (254, 267), 2.0),
    (1510, "Trend Denim", 18, 1016, (272, 274, 275), 2.0),
    (1342, "Premium Quality", 14, 1010, (258, 265, 252), 1.5),
    (1340, "Premium Outerwear", 14, 1007, (262, 263), 1.0),
    (1310, "Tailoring", 11, 1009, (272, 275, 262), 2.0),
    (1339, "Clean Lingerie", 61, 1017, (306, 286), 3.0),
    (1334, "Expressive Lingerie", 61, 1017, (306, 286), 2.0),
    (3608, "Tights basic", 62, 1021, (304, 302), 2.0),
    (1313, "Nightwear", 62, 1017, (297,), 1.5),
    (1240, "Swimwear", 60, 1018, (59, 298, 57), 2.0),
    (3209, "Jewellery", 66, 1019, (70, 74), 2.0),
    (3210, "Small Accessories", 66, 1019, (81, 67, 74), 1.5),
    (3509, "Shoes", 64, 1020, (94, 87, 91), 2.0),
    (3212, "Bags", 65, 1019, (66,), 1.0),
    (3230, "Hats & Scarves", 65, 1019, (75, 80), 1.0),
    (5883, "Divided Jersey", 53, 1005, (254, 255, 253), 4.0),
    (5828, "Divided Trousers", 53, 1009, (272, 274), 3.0),
    (5830, "Divided Dresses", 53, 1013, (265, 267, 275), 3.0),
    (5820, "Divided Knit", 53, 1003, (252, 308), 2.0),
    (5999, "Divided Basics Jersey", 51, 1002, (255, 253, 273), 3.0),
    (5962, "Divided Accessories", 52, 1019, (70, 75, 81, 66), 2.0),
    (5963, "Divided Shoes", 52, 1020, (94, 91), 1.0),
    (7930, "Men Jersey", 21, 1005, (255, 308), 3.0),
    (7920, "Men Trousers", 21, 1009, (272, 274), 2.0),
    (7940, "Men Denim", 21, 1016, (272,), 2.0),
    (7616, "Men Shirts", 20, 1011, (259,), 2.0),
    (7617, "Men Knitwear", 20, 1003, (252, 245), 1.5),
    (7618, "Men Outerwear", 20, 1007, (262, 263), 1.0),
    (7560, "Men Underwear & Socks", 26, 1017, (286, 302), 2.0),
    (7480, "Men Shoes", 27, 1020, (94, 87), 1.0),
    (6515, "Baby basics", 44, 1006, (256, 268, 270), 3.0),
    (6520, "Baby Socks", 44, 1021, (302, 304), 1.5),
    (6542, "Baby Girl Jersey", 40, 1006, (270, 265, 256), 2.0),
    (6543, "Baby Boy Jersey", 41, 1006, (270, 268, 256), 2.0),
    (8310, "Kids Girl Jersey Fancy", 76, 1005, (254, 265, 273), 3.0),
    (8316, "Kids Girl Dresses", 76, 1014, (265, 275), 1.5),
    (8510, "Kids Boy Jersey Fancy", 46, 1005, (255, 308, 272), 3.0),
    (8512, "Kids Boy Denim", 46, 1016, (272, 274), 1.5),
    (8710, "Kids Outerwear", 45, 1007, (262, 263), 1.5),
    (8610, "Young Girl Jersey Fancy", 77, 1005, (254, 255, 265), 2.5),
    (8615, "Young Girl Trouser", 77, 1009, (272, 273, 274), 1.5),
    (8810, "Young Boy Jersey Fancy", 47, 1005, (255, 308), 2.0),
    (8815, "Young Boy Trouser", 47, 1009, (272, 274), 1.5),
    (8050, "Kids Swimwear", 43, 1018, (57, 59, 298), 1.5),
    (8052, "Kids Accessories", 43, 1019, (75, 74, 66), 1.5),
    (8040, "Kids Shoes", 42, 1020, (94, 87, 91), 1.5),
    (4242, "Ladies Sport Bottoms", 5, 1005, (273, 274), 1.5),
    (4244, "Ladies Sport Bras", 5, 1017, (306, 253), 1.0),
    (4252, "Men Sport Wear", 22, 1005, (255, 274, 308), 1.0),
)


#: Season tendency codes -> probabilities of (all-year, summer, winter) profiles.
SEASON_TENDENCY: dict[str, tuple[float, float, float]] = {
    "A": (0.80, 0.10, 0.10),
    "M": (0.50, 0.30, 0.20),
    "S": (0.05, 0.90, 0.05),
    "W": (0.05, 0.05, 0.90),
}


ALL_YEAR, SUMMER, WINTER = 0, 1, 2


#: product_type_no, product_type_name, product_group_name, price multiplier, season tendency,
#: repeat propensity (probability that a re-buy attempt of this type goes ahead)
PRODUCT_TYPES: tuple[tuple[int, str, str, float, str, float], ...] = (
    (253, "Vest top", "Garment Upper body", 0.6, "M", 0.7),
    (255, "T-shirt", "Garment Upper body", 0.6, "A", 0.6),
    (254, "Top", "Garment Upper body", 0.7, "M", 0.35),
    (252, "Sweater", "Garment Upper body", 1.3, "W", 0.2),
    (258, "Blouse", "Garment Upper body", 1.0, "M", 0.2),
    (259, "Shirt", "Garment Upper body", 1.1, "A", 0.25),
    (262, "Jacket", "Garment Upper body", 2.2, "W", 0.1),
    (263, "Coat", "Garment Upper body", 3.2, "W", 0.05),
    (308, "Hoodie", "Garment Upper body", 1.2, "W", 0.2),
    (245, "Cardigan", "Garment Upper body", 1.2, "W", 0.2),
    (256, "Bodysuit", "Garment Upper body", 0.5, "A", 0.6),
    (272, "Trousers", "Garment Lower body", 1.3, "A", 0.35),
    (274, "Shorts", "Garment Lower body", 0.8, "S", 0.2),
    (275, "Skirt", "Garment Lower body", 0.9, "S", 0.15),
    (273, "Leggings/Tights", "Garment Lower body", 0.6, "A", 0.7),
    (265, "Dress", "Garment Full body", 1.3, "S", 0.1),
    (267, "Jumpsuit/Playsuit", "Garment Full body", 1.2, "S", 0.1),
    (270, "Garment Set", "Garment Full body", 0.9, "A", 0.3),
    (268, "Dungarees", "Garment Full body", 0.9, "A", 0.2),
    (286, "Underwear bottom", "Underwear", 0.3, "A", 0.9),
    (306, "Bra", "Underwear", 0.8, "A", 0.8),
    (302, "Socks", "Socks & Tights", 0.3, "A", 0.9),
    (304, "Underwear Tights", "Socks & Tights", 0.4, "W", 0.85),
    (59, "Swimwear bottom", "Swimwear", 0.5, "S", 0.3),
    (298, "Bikini top", "Swimwear", 0.6, "S", 0.3),
    (57, "Swimsuit", "Swimwear", 0.9, "S", 0.2),
    (297, "Pyjama set", "Nightwear", 0.9, "A", 0.3),
    (94, "Sneakers", "Shoes", 1.8, "A", 0.1),
    (87, "Boots", "Shoes", 2.5, "W", 0.05),
    (91, "Sandals", "Shoes", 1.2, "S", 0.1),
    (66, "Bag", "Accessories", 1.0, "A", 0.05),
    (70, "Earring", "Accessories", 0.4, "A", 0.3),
    (75, "Hat/beanie", "Accessories", 0.5, "W", 0.1),
    (81, "Sunglasses", "Accessories", 0.4, "S", 0.1),
    (80, "Scarf", "Accessories", 0.6, "W", 0.1),
    (67, "Belt", "Accessories", 0.5, "A", 0.1),
    (74, "Hair/alice band", "Accessories", 0.3, "A", 0.5),
)


#: Types at least this re-buyable that are all-year count as basics (slow lifecycle decay).
BASICS_MIN_REPEAT_PROPENSITY = 0.6


#: colour_group_code, colour_group_name, perceived_colour_value_id, perceived_colour_master_id,
#: relative frequency
COLOURS: tuple[tuple[int, str, int, int, float], ...] = (
    (9, "Black", 4, 5, 22.0),
    (73, "Dark Blue", 4, 2, 12.0),
    (10, "White", 3, 9, 9.5),
    (51, "Light Pink", 1, 4, 5.8),
    (7, "Grey", 2, 12, 4.5),
    (12, "Light Beige", 1, 11, 3.4),
    (72, "Blue", 5, 2, 3.3),
    (42, "Red", 5, 18, 3.1),
    (71, "Light Blue", 1, 2, 3.0),
    (19, "Greenish Khaki", 2, 20, 2.8),
    (8, "Dark Grey", 4, 12, 2.7),
    (11, "Off White", 1, 9, 2.7),
    (13, "Beige", 2, 11, 2.7),
    (43, "Dark Red", 4, 18, 2.3),
    (93, "Dark Green", 4, 19, 2.1),
    (6, "Light Grey", 3, 12, 2.1),
    (52, "Pink", 2, 4, 2.1),
    (22, "Yellow", 5, 8, 1.6),
    (17, "Yellowish Brown", 2, 13, 1.5),
    (5, "Gold", 7, 15, 1.4),
    (32, "Orange", 5, 3, 0.8),
    (62, "Purple", 7, 6, 0.2),
    (82, "Turquoise", 7, 7, 0.4),
)


PERCEIVED_COLOUR_VALUES: dict[int, str] = {
    1: "Dusty Light",
    2: "Medium Dusty",
    3: "Light",
    4: "Dark",
    5: "Bright",
    7: "Medium",
}


PERCEIVED_COLOUR_MASTERS: dict[int, str] = {
    2: "Blue",
    3: "Orange",
    4: "Pink",
    5: "Black",
    6: "Lilac Purple",
    7: "Turquoise",
    8: "Yellow",
    9: "White",
    11: "Beige",
    12: "Grey",
    13: "Brown",
    15: "Metal",
    18: "Red",
    19: "Green",
    20: "Khaki green",
}


#: graphical_appearance_no, graphical_appearance_name, relative frequency (Denim handled apart)
GRAPHICAL_APPEARANCES: tuple[tuple[int, str, float], ...] = (
    (1010016, "Solid", 50.0),
    (1010001, "All over pattern", 17.0),
    (1010010, "Melange", 6.0),
    (1010017, "Stripe", 5.0),
    (1010008, "Front print", 3.2),
    (1010014, "Placement print", 3.1),
    (1010004, "Check", 2.2),
    (1010005, "Colour blocking", 1.8),
    (1010021, "Lace", 1.5),
)


DENIM_APPEARANCE: tuple[int, str] = (1010023, "Denim")


#: Words for generated product names and descriptions.
NAME_STEMS: tuple[str, ...] = (
    "Luna",
    "Tilly",
    "Bella",
    "Jade",
    "Mona",
    "Rex",
    "Timmy",
    "Skinny",
    "Slim",
    "Relaxed",
    "Wide",
    "Cropped",
    "Basic",
    "Soft",
    "Cosy",
    "Sunny",
    "Ivy",
    "Nora",
    "Vera",
    "Mia",
    "Zoe",
    "Lola",
    "Ella",
    "Kim",
    "Max",
    "Leo",
    "Sam",
    "Alba",
    "Rosa",
    "Maja",
    "Lily",
    "Stella",
    "Chloe",
    "Ava",
    "Tova",
    "Ines",
    "Dixie",
    "Perrie",
    "Jordan",
    "Hudson",
)


DESC_FITS: tuple[str, ...] = (
    "Fitted",
    "Relaxed-fit",
    "Oversized",
    "Short",
    "Long",
    "Soft",
    "Loose-fit",
    "Straight-cut",
)


DESC_MATERIALS: tuple[str, ...] = (
    "soft cotton jersey",
    "fine-knit viscose",
    "woven fabric",
    "washed denim",
    "ribbed modal",
    "recycled polyester",
    "organic cotton",
    "sturdy twill",
)


#: Sentences naming a hidden visual style (``SyntheticConfig.styles`` wraps around this list).
DESC_STYLES: tuple[str, ...] = (
    "A minimalist look",
    "A romantic feel",
    "A sporty edge",
    "A vintage touch",
    "A boho mood",
    "A clean Scandinavian line",
    "A bold graphic statement",
    "A soft pastel mood",
    "A utility style",
    "An elegant evening feel",
    "A playful twist",
    "A classic preppy look",
    "A festival vibe",
    "A relaxed weekend feel",
    "A sleek monochrome look",
    "A retro seventies feel",
)


DESC_FEATURES: tuple[str, ...] = (
    "a round neckline",
    "short sleeves",
    "an elasticated waist",
    "side pockets",
    "a concealed zip",
    "adjustable straps",
    "ribbing at the hems",
    "a V-neck",
    "long sleeves",
    "a drawstring",
)


CLUB_STATUSES: tuple[str | None, ...] = ("ACTIVE", "PRE-CREATE", "LEFT CLUB", None)


NEWS_FREQUENCIES: tuple[str | None, ...] = ("NONE", "Regularly", "Monthly", None)
