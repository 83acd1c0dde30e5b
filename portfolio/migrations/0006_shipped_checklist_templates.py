"""The shipped checklist templates: the core rules, the EU AI Act and Japan's AI Guidelines for Business.

Templates are data: administrators edit, deactivate or add them in the admin. The core
rules (PRODUCT.md section 5) apply to every use case; the two frameworks apply to the
use cases that choose them. Conditions narrow where an item applies: risk tiers, data
classifications, hosting and the company's AI role (an empty list means any).

Japan's AI Guidelines for Business (METI and MIC, Ver 1.0, 19 April 2024) state ten
common guiding principles for AI developers, AI providers and AI business users; each
becomes an item in the category it mostly concerns, plus items for each role's own duties.
"""
from django.db import migrations

EU = "EU AI Act (Regulation (EU) 2024/1689)"
JP = "AI Guidelines for Business Ver 1.0 (METI/MIC, 2024-04-19)"
HIGH = ["high"]
SENSITIVE = ["confidential", "personal"]

# code, framework, category, kind, rule, title, guidance, reference, conditions, required
TEMPLATES = [
    # --- Core rules: every use case ---------------------------------------------------------
    ("core-licence-known", "core", "licensing", "automatic", "licence_known",
     "Every deployed model has a known licence",
     "Each planned or active deployment's model names its licence in the catalogue.", "", {}, True),
    ("core-licence-commercial-use", "core", "licensing", "automatic", "licence_commercial_use",
     "The model licences allow commercial use",
     "A licence that forbids commercial use fails the item; an unknown licence leaves it open.", "", {}, True),
    ("core-licence-user-limit", "core", "licensing", "automatic", "licence_user_limit",
     "Expected monthly active users stay within the licences' limits",
     ("Llama 3 Community License: above 700 million monthly active users a licence from Meta is needed. "
      "Qwen licence (Qwen2.5-72B): above 100 million a separate licence from Alibaba Cloud."), "", {}, True),
    ("core-data-processing-agreement", "core", "security", "automatic", "data_processing_agreement",
     "Confidential and personal data reach external APIs only under a data-processing agreement",
     "Record the signed agreement on each external API deployment, or host the model yourself.",
     "GDPR Art. 28; APPI Art. 27-28", {"data": SENSITIVE}, True),
    ("core-risk-tier", "core", "ethics", "automatic", "risk_tier",
     "Risk tier assessed, and not unacceptable",
     "Classify the use case under the EU AI Act's tiers. Unacceptable risk (prohibited practices) fails.",
     f"{EU} Art. 5-6", {}, True),
    ("core-human-oversight", "core", "ethics", "manual", "",
     "Human oversight is designed and assigned",
     "Name who oversees the system, how they can interpret, override or stop it, and how they are trained.",
     f"{EU} Art. 14", {"risk_tiers": HIGH}, True),
    ("core-bias-evaluation", "core", "ethics", "manual", "",
     "Bias is evaluated on representative data",
     "Attach the evaluation: the groups compared, the metrics, the results and the mitigations.",
     f"{EU} Art. 10(2)(f)", {"risk_tiers": HIGH}, True),
    ("core-dpia", "core", "ethics", "manual", "",
     "A data-protection impact assessment is done",
     "Personal data: attach the DPIA (purpose, necessity, risks to the people concerned, measures).",
     "GDPR Art. 35; APPI", {"data": ["personal"]}, True),

    # --- EU AI Act: obligations grow with the risk tier ---------------------------------------
    ("eu-ai-literacy", "eu_ai_act", "ethics", "manual", "",
     "People who operate or use the system have sufficient AI literacy",
     "Training records or an equivalent for the staff who run and use the system.", f"{EU} Art. 4", {}, True),
    ("eu-transparency", "eu_ai_act", "ethics", "manual", "",
     "People are told they interact with AI, and generated content is marked",
     "Show the notice or the marking (chatbots, synthetic audio, images, video and text).",
     f"{EU} Art. 50", {"risk_tiers": ["limited", "high"]}, True),
    ("eu-gpai-obligations", "eu_ai_act", "licensing", "manual", "",
     "General-purpose model: documentation, copyright policy and training-content summary",
     ("For a model the company develops: technical documentation, a policy to respect EU copyright "
      "(including opt-outs) and a public summary of the training content."),
     f"{EU} Art. 53", {"roles": ["developer"]}, True),
    ("eu-risk-management", "eu_ai_act", "ethics", "manual", "",
     "A risk-management system runs through the system's life cycle",
     "Identified risks to health, safety and fundamental rights, their evaluation and the measures taken.",
     f"{EU} Art. 9", {"risk_tiers": HIGH, "roles": ["developer", "provider"]}, True),
    ("eu-data-governance", "eu_ai_act", "ethics", "manual", "",
     "Training, validation and test data are governed",
     "Relevance, representativeness, errors and completeness of the data sets, and how gaps are handled.",
     f"{EU} Art. 10", {"risk_tiers": HIGH, "roles": ["developer", "provider"]}, True),
    ("eu-technical-documentation", "eu_ai_act", "ethics", "manual", "",
     "Technical documentation and instructions for use are kept up to date",
     "Link the documentation set and the instructions given to deployers.",
     f"{EU} Art. 11, 13", {"risk_tiers": HIGH, "roles": ["developer", "provider"]}, True),
    ("eu-logging", "eu_ai_act", "security", "manual", "",
     "Events are logged automatically and the logs are kept",
     "Where the logs are, what they record and how long they are kept (deployers: at least six months).",
     f"{EU} Art. 12, 19, 26(6)", {"risk_tiers": HIGH}, True),
    ("eu-accuracy-robustness-security", "eu_ai_act", "security", "manual", "",
     "Accuracy, robustness and cybersecurity are tested",
     "Declared accuracy metrics, resilience to errors and to attacks (data poisoning, adversarial inputs).",
     f"{EU} Art. 15", {"risk_tiers": HIGH, "roles": ["developer", "provider"]}, True),
    ("eu-conformity-assessment", "eu_ai_act", "licensing", "manual", "",
     "Conformity assessment done, CE marking and EU database registration in place",
     "The declaration of conformity and the registration number.",
     f"{EU} Art. 43, 47-49", {"risk_tiers": HIGH, "roles": ["provider"]}, True),
    ("eu-post-market-monitoring", "eu_ai_act", "security", "manual", "",
     "Post-market monitoring and serious-incident reporting are organised",
     "The monitoring plan and who reports serious incidents to the authorities, and how fast.",
     f"{EU} Art. 72-73", {"risk_tiers": HIGH, "roles": ["provider"]}, True),
    ("eu-deployer-duties", "eu_ai_act", "ethics", "manual", "",
     "Used according to the provider's instructions, monitored, and workers informed",
     "Instructions followed, input data relevant, operation monitored, affected workers and people informed.",
     f"{EU} Art. 26", {"risk_tiers": HIGH, "roles": ["business_user"]}, True),
    ("eu-fundamental-rights-impact", "eu_ai_act", "ethics", "manual", "",
     "Fundamental-rights impact assessment (public bodies, credit scoring, insurance pricing)",
     ("Required of deployers that are public bodies or provide public services, and for credit scoring and "
      "life or health insurance pricing; optional otherwise."),
     f"{EU} Art. 27", {"risk_tiers": HIGH, "roles": ["business_user"]}, False),

    # --- Japan's AI Guidelines for Business: the ten common guiding principles -----------------
    ("jp-human-centric", "japan_ai_guidelines", "ethics", "manual", "",
     "Human-centric: human rights and dignity respected, no undue manipulation",
     ("How the use case respects human rights and autonomy, avoids manipulating decisions or emotions, and "
      "deals with disinformation."), f"{JP}, common guiding principle 1 (human-centric)", {}, True),
    ("jp-safety", "japan_ai_guidelines", "security", "manual", "",
     "Safety: risks to life, body, property and the environment assessed and mitigated",
     "The risk assessment, the measures and how the system is kept under control when it behaves unexpectedly.",
     f"{JP}, common guiding principle 2 (safety)", {}, True),
    ("jp-fairness", "japan_ai_guidelines", "ethics", "manual", "",
     "Fairness: bias in data and models considered, with human judgement where needed",
     "The biases looked for, what was found, and where a person reviews the outputs.",
     f"{JP}, common guiding principle 3 (fairness)", {}, True),
    ("jp-privacy", "japan_ai_guidelines", "security", "manual", "",
     "Privacy protection: personal information handled lawfully and as promised",
     "How the Act on the Protection of Personal Information (APPI) and the company's privacy policy are met.",
     f"{JP}, common guiding principle 4 (privacy protection)", {}, True),
    ("jp-security", "japan_ai_guidelines", "security", "manual", "",
     "Ensuring security: protected against misuse, manipulation and leaks",
     "Measures against unauthorised access, prompt injection, data poisoning and leakage of confidential data.",
     f"{JP}, common guiding principle 5 (ensuring security)", {}, True),
    ("jp-transparency", "japan_ai_guidelines", "ethics", "manual", "",
     "Transparency: stakeholders know AI is used, for what, and with which limits; traceability kept",
     "The notice to stakeholders and the records that let a result be traced back.",
     f"{JP}, common guiding principle 6 (transparency)", {}, True),
    ("jp-accountability", "japan_ai_guidelines", "ethics", "manual", "",
     "Accountability: responsibilities assigned and documented, with a contact point",
     "Who is responsible for what, the governance documents, and where stakeholders can ask or complain.",
     f"{JP}, common guiding principle 7 (accountability)", {}, True),
    ("jp-education-literacy", "japan_ai_guidelines", "ethics", "manual", "",
     "Education and literacy: the people involved have the AI literacy their role needs",
     "Training given to staff who build, run or use the system.",
     f"{JP}, common guiding principle 8 (education and literacy)", {}, True),
    ("jp-fair-competition", "japan_ai_guidelines", "licensing", "manual", "",
     "Ensuring fair competition: others' rights and fair competition respected",
     "Intellectual property, terms of service of models and data, and competition law are respected.",
     f"{JP}, common guiding principle 9 (ensuring fair competition)", {}, True),
    ("jp-innovation", "japan_ai_guidelines", "licensing", "manual", "",
     "Innovation: interoperability and open collaboration considered within licence terms",
     "Open models and data used within their licences; interoperability and international standards considered.",
     f"{JP}, common guiding principle 10 (innovation)", {}, True),
    # Each role's own duties.
    ("jp-developer-training-data", "japan_ai_guidelines", "licensing", "manual", "",
     "AI developers: training data collected lawfully, quality-controlled and documented",
     "Sources, rights to use them (copyright, personal data, terms of use) and the quality checks applied.",
     f"{JP}, part III (AI developers)", {"roles": ["developer"]}, True),
    ("jp-provider-intended-use", "japan_ai_guidelines", "ethics", "manual", "",
     "AI providers: intended use, limitations and risks communicated to business users",
     "The documentation given to business users and how they are told about changes.",
     f"{JP}, part IV (AI providers)", {"roles": ["provider"]}, True),
    ("jp-business-user-proper-use", "japan_ai_guidelines", "ethics", "manual", "",
     "AI business users: used within the provider's intended scope, outputs checked before use",
     "The provider's terms followed, and where people check outputs before they are relied on.",
     f"{JP}, part V (AI business users)", {"roles": ["business_user"]}, True),
    ("jp-business-user-input-data", "japan_ai_guidelines", "security", "manual", "",
     "AI business users: no personal or confidential data entered beyond what is allowed",
     "The rule staff follow on what may be entered, and how the provider's terms treat input data.",
     f"{JP}, part V (AI business users)", {"roles": ["business_user"], "data": SENSITIVE}, True),
]

CONDITION_FIELDS = {
    "risk_tiers": "applies_to_risk_tiers",
    "data": "applies_to_data_classifications",
    "hosting": "applies_to_hosting",
    "roles": "applies_to_ai_roles",
}


def ship_templates(apps, schema_editor):
    ChecklistTemplate = apps.get_model("portfolio", "ChecklistTemplate")
    for position, (code, framework, category, kind, rule, title, guidance, reference, conditions, required) in (
        enumerate(TEMPLATES)
    ):
        ChecklistTemplate.objects.update_or_create(
            code=code,
            defaults={
                "framework": framework,
                "category": category,
                "kind": kind,
                "rule": rule,
                "title": title,
                "guidance": guidance,
                "reference": reference,
                "required": required,
                "active": True,
                "position": position,
                **{field: conditions.get(key, []) for key, field in CONDITION_FIELDS.items()},
            },
        )


def remove_templates(apps, schema_editor):
    codes = [row[0] for row in TEMPLATES]
    apps.get_model("portfolio", "ChecklistItem").objects.filter(template__code__in=codes).delete()
    apps.get_model("portfolio", "ChecklistTemplate").objects.filter(code__in=codes).delete()


class Migration(migrations.Migration):
    dependencies = [("portfolio", "0005_governance")]
    operations = [migrations.RunPython(ship_templates, remove_templates)]
