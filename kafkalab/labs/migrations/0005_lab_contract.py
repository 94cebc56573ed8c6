from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("labs", "0004_order_partitioner"),
    ]

    operations = [
        migrations.AddField(
            model_name="lab",
            name="encoding",
            field=models.CharField(
                choices=[("json", "plain JSON"), ("json-schema", "JSON Schema"), ("avro", "Avro")],
                default="json",
                max_length=12,
            ),
        ),
        migrations.AddField(
            model_name="lab",
            name="writer_schema",
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name="lab",
            name="writer_schema_id",
            field=models.IntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="lab",
            name="writer_version",
            field=models.IntegerField(blank=True, null=True),
        ),
    ]
