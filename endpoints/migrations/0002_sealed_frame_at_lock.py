from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("endpoints", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="datalock",
            name="sealed_file",
            field=models.FileField(default="", max_length=300),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="datalock",
            name="sealed_sha256",
            field=models.CharField(default="", max_length=64),
            preserve_default=False,
        ),
    ]
