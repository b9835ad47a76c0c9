// deno-fmt-ignore-file
/**
 * Word lists for generated CRM data. Deliberately mixed: accents,
 * apostrophes, hyphens, particles and non-Latin scripts, because real CRM
 * data has them and the sync engine must carry them unchanged.
 */

export const FIRST_NAMES = [
  "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda",
  "David", "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph",
  "Jessica", "Thomas", "Sarah", "Charles", "Karen", "Christopher", "Lisa",
  "Daniel", "Nancy", "Matthew", "Betty", "Anthony", "Sandra", "Mark", "Ashley",
  "José", "María", "Zoë", "Chloé", "François", "Renée", "Björn", "Søren",
  "Jürgen", "Małgorzata", "Łukasz", "Dvořák", "Ngozi", "Chinedu", "Aisha",
  "Mohammed", "Fatima", "Priya", "Arjun", "Ananya", "Wei", "Mei", "Hiroshi",
  "Yuki", "Min-jun", "Seo-yeon", "Olga", "Dmitri", "Giulia", "Luca", "Siobhán",
  "Seán", "Anne-Marie", "Jean-Luc", "Mary-Kate", "Ömer", "Elif", "Thảo", "Minh",
  "Kwame", "Ama", "Ingrid", "Lars", "Noémie", "Raphaël", "Inês", "João", "Ava",
  "Liam", "Olivia", "Noah", "Emma", "Sophia", "Jackson", "Isabella", "Lucas",
  "Mia", "Ethan", "Amelia", "Mateo", "Harper", "Leilani", "Kai", "Astrid",
  "小明", "美玲", "Алексей", "Наталья",
];

export const LAST_NAMES = [
  "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
  "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson",
  "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez",
  "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis",
  "Robinson", "O'Brien", "O'Connor", "McDonald", "MacLeod", "D'Angelo",
  "van der Berg", "de la Cruz", "von Neumann", "Müller", "Schröder", "Weiß",
  "Øvergaard", "Kowalski", "Nowak", "Dvořáková", "Novák", "Jensen", "Nielsen",
  "Johansson", "Virtanen", "Rossi", "Bianchi", "Dubois", "Lefèvre", "Moreau",
  "García-Márquez", "Smith-Jones", "Okafor", "Adeyemi", "Mensah", "Kim", "Park",
  "Nguyễn", "Trần", "Wang", "Li", "Zhang", "Chen", "Tanaka", "Suzuki", "Sato",
  "Patel", "Sharma", "Singh", "Gupta", "Khan", "Ahmed", "Yılmaz", "Kaya",
  "Ivanov", "Petrova", "Silva", "Santos", "Oliveira", "Costa", "Fernández",
  "Papadopoulos", "Cohen", "Levi", "Murphy", "Kelly", "Walsh", "Ó Súilleabháin",
  "王", "李", "Смирнов",
];

export const COMPANY_WORDS = [
  "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Wonka",
  "Cyberdyne", "Soylent", "Tyrell", "Vandelay", "Pied Piper", "Aperture",
  "Black Mesa", "Northwind", "Contoso", "Fabrikam", "Litware", "Adventure Works",
  "Tailspin", "Wingtip", "Blue Yonder", "Proseware", "Lucerne", "Humongous",
  "Alpine", "Summit", "Harbor", "Granite", "Cedar", "Maple", "Aurora", "Nimbus",
  "Zenith", "Vertex", "Quantum", "Helios", "Atlas", "Orion", "Pioneer",
  "Beacon", "Keystone", "Meridian", "Sterling", "Evergreen", "Redwood",
  "Blue Ridge", "Silverline", "Brightpath", "Nordlicht", "Sakura", "Café Olé",
  "Über", "Ærø", "Señor", "Kraków", "Zürich", "Göteborg", "São Paulo",
];

export const COMPANY_SUFFIXES = [
  "Inc.", "LLC", "Ltd", "Ltd.", "GmbH", "AG", "S.A.", "SARL", "B.V.", "Pty Ltd",
  "K.K.", "Co.", "Corp", "Corporation", "Group", "Holdings", "Labs", "Systems",
  "Solutions", "Technologies", "Partners", "& Co", "Consulting", "Industries",
  "",
];

export const TLDS = [
  "com", "com", "com", "io", "co", "net", "org", "de", "co.uk", "fr", "nl", "es",
  "it", "com.au", "com.br", "jp", "in", "ca", "se", "ch",
];

export const FREE_MAIL_DOMAINS = [
  "gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com",
  "proton.me", "gmx.de", "web.de", "orange.fr", "yahoo.co.uk",
];

export const JOB_TITLES = [
  "CEO", "CTO", "CFO", "COO", "VP Sales", "VP Marketing", "Head of Engineering",
  "Engineering Manager", "Software Engineer", "Senior Software Engineer",
  "Product Manager", "Account Executive", "Sales Development Representative",
  "Customer Success Manager", "Marketing Manager", "Office Manager",
  "Procurement Lead", "Operations Director", "Founder", "Co-Founder & CEO",
  "Geschäftsführer", "Directeur Commercial", "Data Analyst", "Consultant",
  "Purchasing Agent", "IT Administrator", "HR Business Partner", "",
];

export const INDUSTRIES = [
  "COMPUTER_SOFTWARE", "INFORMATION_TECHNOLOGY_AND_SERVICES", "FINANCIAL_SERVICES",
  "HOSPITAL_HEALTH_CARE", "RETAIL", "MARKETING_AND_ADVERTISING", "CONSTRUCTION",
  "REAL_ESTATE", "AUTOMOTIVE", "TELECOMMUNICATIONS", "EDUCATION_MANAGEMENT",
  "LOGISTICS_AND_SUPPLY_CHAIN", "FOOD_BEVERAGES", "MANAGEMENT_CONSULTING",
  "INSURANCE", "BANKING", "BIOTECHNOLOGY", "RENEWABLES_ENVIRONMENT",
];

/** Country (ISO 3166-1 alpha-2 and name) with a few cities. */
export const PLACES: ReadonlyArray<
  { code: string; country: string; cities: readonly string[] }
> = [
  {
    code: "US",
    country: "United States",
    cities: ["San Francisco", "New York", "Austin", "Chicago", "Seattle", "Boston"],
  },
  { code: "GB", country: "United Kingdom", cities: ["London", "Manchester", "Edinburgh"] },
  { code: "DE", country: "Germany", cities: ["Berlin", "München", "Hamburg", "Köln"] },
  { code: "FR", country: "France", cities: ["Paris", "Lyon", "Marseille"] },
  { code: "IN", country: "India", cities: ["Bengaluru", "Mumbai", "Pune"] },
  { code: "BR", country: "Brazil", cities: ["São Paulo", "Rio de Janeiro"] },
  { code: "AU", country: "Australia", cities: ["Sydney", "Melbourne"] },
  { code: "JP", country: "Japan", cities: ["Tokyo", "Osaka"] },
  { code: "ES", country: "Spain", cities: ["Madrid", "Barcelona"] },
  { code: "NL", country: "Netherlands", cities: ["Amsterdam", "Rotterdam"] },
  { code: "CA", country: "Canada", cities: ["Toronto", "Vancouver", "Montréal"] },
  { code: "SE", country: "Sweden", cities: ["Stockholm", "Göteborg"] },
];

export const DEAL_WORDS = [
  "Annual subscription", "Enterprise license", "Pilot", "Expansion",
  "Renewal", "Upsell", "Professional services", "Onboarding package",
  "Support plan", "Hardware refresh", "Multi-year agreement", "Seats add-on",
];

export const CURRENCIES = ["USD", "USD", "USD", "EUR", "EUR", "GBP", "AUD", "CAD", "JPY"];
